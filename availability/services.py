"""Availability transitions of a driver, each a compare-and-set with its audit event.

States: offline, available, on a break (with an end time), and busy, which is derived (an
available driver holding as many orders as they can carry) and never stored.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_record
from dispatch.errors import DriverUnavailable, FeatureOff, IllegalTransition, InvalidInput, NotFound
from dispatch.models import Driver

A = Driver.Availability

AUDIT_KIND: dict[str, str] = {A.AVAILABLE: "driver.online", A.OFFLINE: "driver.offline", A.ON_BREAK: "driver.break_started"}


@dataclass(frozen=True)
class AvailabilityChange:
    """A driver's availability after a transition, and the one it left (equal when nothing changed)."""

    driver: Driver
    before: str

    @property
    def changed(self) -> bool:
        return self.driver.availability != self.before


def _driver_availability_set(
    *,
    driver_id: int,
    to: str,
    actor: Actor,
    now: datetime,
    allowed_from: tuple[str, ...] | None = None,
    break_ends_at: datetime | None = None,
    kind: str | None = None,
    reason: str = "",
) -> AvailabilityChange:
    """Inside the caller's transaction: compare-and-set of the availability, with its audit event."""
    row = Driver.objects.filter(pk=driver_id).values_list("availability", "user__is_active").first()
    if row is None:
        raise NotFound(f"driver {driver_id} not found")
    current, is_user_active = row
    if not is_user_active and to != A.OFFLINE:
        raise DriverUnavailable(f"driver {driver_id} is deactivated", driver=driver_id)  # takes no work until reactivated
    if current == to and to != A.ON_BREAK:
        # Idempotent: going online twice is not an error and writes nothing.
        return AvailabilityChange(driver=Driver.objects.get(pk=driver_id), before=current)
    if allowed_from is not None and current not in allowed_from:
        raise IllegalTransition(f"driver {driver_id}", current, to)
    changes = {"availability": to, "availability_changed_at": now, "break_ends_at": break_ends_at}
    if to == A.AVAILABLE:
        changes["idle_since"] = now
        changes["last_heartbeat_at"] = now  # silence is counted from here
    if not Driver.objects.filter(pk=driver_id, availability=current).update(**changes):
        now_state = Driver.objects.filter(pk=driver_id).values_list("availability", flat=True).first()
        raise IllegalTransition(f"driver {driver_id}", str(now_state), to)
    driver = Driver.objects.get(pk=driver_id)
    after: dict[str, str] = {"availability": to}
    if break_ends_at:
        after["break_ends_at"] = break_ends_at.isoformat()
    audit_record(
        kind or AUDIT_KIND[to],
        actor=actor,
        subject_type="driver",
        subject_id=driver_id,
        driver_id=driver_id,
        before={"availability": current},
        after=after,
        data={"reason": reason} if reason else None,
    )
    return AvailabilityChange(driver=driver, before=current)


def driver_go_online(*, driver_id: int, actor: Actor, now: datetime) -> AvailabilityChange:
    return _driver_availability_set(driver_id=driver_id, to=A.AVAILABLE, actor=actor, now=now)


def driver_go_offline(*, driver_id: int, actor: Actor, now: datetime, reason: str = "") -> AvailabilityChange:
    """A driver going offline keeps the orders they hold; they just get no new ones."""
    return _driver_availability_set(driver_id=driver_id, to=A.OFFLINE, actor=actor, now=now, reason=reason)


def break_start(*, driver_id: int, minutes: int, actor: Actor, now: datetime) -> AvailabilityChange:
    """A break of `minutes`; it ends by itself then (the break sweep), or earlier by `break_end`."""
    from rollout.models import Feature
    from rollout.selectors import feature_enabled_for

    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= settings.DISPATCH_MAX_BREAK_MIN:
        raise InvalidInput(f"a break lasts 1 to {settings.DISPATCH_MAX_BREAK_MIN} minutes", minutes=minutes)
    driver = Driver.objects.filter(pk=driver_id).first()
    if driver is None:
        raise NotFound(f"driver {driver_id} not found")
    if not feature_enabled_for(Feature.AVAILABILITY, driver):
        raise FeatureOff("breaks are not switched on for this driver (v2_availability); go offline instead", feature=Feature.AVAILABILITY)
    return _driver_availability_set(
        driver_id=driver_id, to=A.ON_BREAK, actor=actor, now=now, allowed_from=(A.AVAILABLE,), break_ends_at=now + timedelta(minutes=minutes)
    )


def break_end(*, driver_id: int, actor: Actor, now: datetime, reason: str = "") -> AvailabilityChange:
    return _driver_availability_set(
        driver_id=driver_id, to=A.AVAILABLE, actor=actor, now=now, allowed_from=(A.ON_BREAK,), kind="driver.break_ended", reason=reason
    )


def driver_heartbeat(*, driver_id: int, now: datetime | None = None) -> None:
    """The app is alive. Not audited: liveness is telemetry, and its absence is what counts."""
    now = now or timezone.now()
    if not Driver.objects.filter(pk=driver_id).update(last_heartbeat_at=now):
        raise NotFound(f"driver {driver_id} not found")


def driver_position_update(*, driver_id: int, lat: float, lon: float, at: datetime | None = None) -> None:
    """Record where the driver is. Positions are telemetry, not state: they are not audited."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput("latitude must be within -90..90 and longitude within -180..180", lat=lat, lon=lon)
    now = timezone.now()
    at = min(at, now) if at else now  # a phone clock running ahead must not pin the position
    # Positions can arrive out of order; an older one never overwrites a newer one.
    updated = Driver.objects.filter(Q(last_position_at__isnull=True) | Q(last_position_at__lte=at), pk=driver_id).update(
        last_lat=lat, last_lon=lon, last_position_at=at
    )
    if not updated and not Driver.objects.filter(pk=driver_id).exists():
        raise NotFound(f"driver {driver_id} not found")
