"""Availability transitions of a driver, each a compare-and-set with its audit event.

States: offline, available, on a break (with an end time), and busy, which is derived (an
available driver holding as many orders as they can carry) and never stored.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from audit.actors import SYSTEM, Actor
from audit.services import audit_record
from dispatch.errors import DriverUnavailable, FeatureOff, IllegalTransition, InvalidInput, NotFound
from dispatch.models import Driver
from dispatch.signals import driver_became_available, driver_became_unavailable

A = Driver.Availability

AUDIT_KIND: dict[str, str] = {A.AVAILABLE: "driver.online", A.OFFLINE: "driver.offline", A.ON_BREAK: "driver.break_started"}


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
) -> Driver:
    with transaction.atomic():
        row = Driver.objects.filter(pk=driver_id).values_list("availability", "user__is_active").first()
        if row is None:
            raise NotFound(f"driver {driver_id} not found")
        current, is_user_active = row
        if not is_user_active and to != A.OFFLINE:
            raise DriverUnavailable(f"driver {driver_id} is deactivated", driver=driver_id)  # takes no work until reactivated
        if current == to and to != A.ON_BREAK:
            # Idempotent: going online twice is not an error and writes nothing.
            return Driver.objects.get(pk=driver_id)
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
        if to == A.AVAILABLE:
            transaction.on_commit(lambda: driver_became_available.send(sender=Driver, driver_id=driver_id), robust=True)
        else:
            transaction.on_commit(lambda: driver_became_unavailable.send(sender=Driver, driver_id=driver_id, reason=to, cause=reason), robust=True)
    return driver


def driver_go_online(*, driver_id: int, actor: Actor, now: datetime | None = None) -> Driver:
    return _driver_availability_set(driver_id=driver_id, to=A.AVAILABLE, actor=actor, now=now or timezone.now())


def driver_go_offline(*, driver_id: int, actor: Actor, now: datetime | None = None, reason: str = "") -> Driver:
    """A driver going offline keeps the orders they hold; they just get no new ones."""
    return _driver_availability_set(driver_id=driver_id, to=A.OFFLINE, actor=actor, now=now or timezone.now(), reason=reason)


def break_start(*, driver_id: int, minutes: int, actor: Actor, now: datetime | None = None) -> Driver:
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
    now = now or timezone.now()
    return _driver_availability_set(
        driver_id=driver_id, to=A.ON_BREAK, actor=actor, now=now, allowed_from=(A.AVAILABLE,), break_ends_at=now + timedelta(minutes=minutes)
    )


def break_end(*, driver_id: int, actor: Actor, now: datetime | None = None, reason: str = "") -> Driver:
    return _driver_availability_set(
        driver_id=driver_id, to=A.AVAILABLE, actor=actor, now=now or timezone.now(), allowed_from=(A.ON_BREAK,), kind="driver.break_ended", reason=reason
    )


def breaks_end_all(*, reason: str) -> int:
    """v2 availability was switched off: v1 knows no breaks, so every break ends now.

    A task that runs late, after ops turned v2 availability back on, ends no break."""
    from rollout.models import Feature
    from rollout.selectors import switch_is_on

    ended = 0
    for driver_id in Driver.objects.filter(availability=A.ON_BREAK).values_list("pk", flat=True):
        if switch_is_on(Feature.AVAILABILITY):
            return ended
        try:
            break_end(driver_id=driver_id, actor=SYSTEM, reason=reason)
            ended += 1
        except IllegalTransition:
            continue
    return ended


def breaks_switched_off_due() -> int:
    """Sweep: while v2 availability is switched off, nobody stays on a break. The task
    enqueued when the switch was turned off is only the fast path; if it was lost, the next
    tick of the break sweep ends the breaks."""
    from rollout.models import Feature
    from rollout.selectors import switch_is_on

    if switch_is_on(Feature.AVAILABILITY) or not Driver.objects.filter(availability=A.ON_BREAK).exists():
        return 0
    return breaks_end_all(reason="switched_off")


def driver_heartbeat(*, driver_id: int, now: datetime | None = None) -> None:
    """The app is alive. Not audited: liveness is telemetry, and its absence is what counts."""
    now = now or timezone.now()
    if not Driver.objects.filter(pk=driver_id).update(last_heartbeat_at=now):
        raise NotFound(f"driver {driver_id} not found")


def end_breaks_due(*, limit: int = 500) -> int:
    """The break sweep: breaks past their end time end now (by the database's clock)."""
    ended = 0
    for driver_id in Driver.objects.filter(availability=A.ON_BREAK, break_ends_at__lte=Now()).values_list("pk", flat=True)[:limit]:
        try:
            break_end(driver_id=driver_id, actor=SYSTEM, reason="break_over")
            ended += 1
        except IllegalTransition:
            continue  # the driver ended it or went offline meanwhile
    return ended


def offline_silent_drivers_due(*, limit: int = 500) -> int:
    """The silence sweep: drivers on v2 availability who stopped sending heartbeats go offline.

    Drivers of the v1 app never send heartbeats, so only drivers for whom the feature is on
    are judged by silence.
    """
    from rollout.models import Feature
    from rollout.selectors import feature_enabled_for

    silent_since = Now() - timedelta(seconds=settings.DISPATCH_HEARTBEAT_TIMEOUT_S)
    silent = Driver.objects.filter(~Q(availability=A.OFFLINE), Q(last_heartbeat_at__lt=silent_since) | Q(last_heartbeat_at__isnull=True))
    went_offline = 0
    for driver in silent.order_by(F("last_heartbeat_at").asc(nulls_first=True))[:limit]:
        if not feature_enabled_for(Feature.AVAILABILITY, driver):
            continue
        try:
            driver_go_offline(driver_id=driver.pk, actor=SYSTEM, reason="silent")
            went_offline += 1
        except IllegalTransition:
            continue
    return went_offline


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
