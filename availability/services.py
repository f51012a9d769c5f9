"""Availability transitions of a driver, each a compare-and-set with its audit event.

States: offline, available, on a break (with an end time), and busy, which is derived (an
available driver holding as many orders as they can carry) and never stored. This app owns
every write of a driver's presence: availability, heartbeats, position, open sockets; the
socket and the REST API call the same service for the same frame.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_record
from availability.models import DriverSocket
from dispatch.clock import database_now
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


def driver_position_update(*, driver_id: int, lat: float, lon: float, at: datetime | None = None) -> datetime | None:
    """Record where the driver is; returns the moment stored, or None for a position older
    than the one held. Positions are telemetry, not state: they are not audited."""
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
    return at if updated else None


# --- Socket presence: the sockets drivers' apps hold open --------------------------------


def driver_socket_connect(*, driver_id: int, channel_name: str, app_version: str = "", now: datetime | None = None) -> list[str]:
    """An authenticated socket joined: mark the app as v2 and reachable and record the socket's
    presence; returns the channel names of the same driver's sockets it pushed out.

    A driver holds at most DISPATCH_MAX_SOCKETS_PER_DRIVER sockets: a new one pushes out the
    oldest. A phone that changes networks opens a new socket while the old one lingers until
    TCP notices; refusing the new one would lock the driver out exactly when they reconnect,
    while closing the oldest keeps them reachable and still bounds what one token can hold.
    """
    from availability import selectors

    now = now or timezone.now()
    changes: dict[str, Any] = {"v2_connected_at": now, "last_heartbeat_at": now}
    if app_version:
        changes["app_version"] = app_version
    with transaction.atomic():
        # The update locks the driver's row: two sockets of one driver connecting at once
        # count each other's presence rows one after the other.
        if not Driver.objects.filter(pk=driver_id).update(**changes):
            raise NotFound(f"driver {driver_id} not found")
        DriverSocket.objects.filter(driver_id=driver_id).exclude(pk__in=selectors.connected_sockets(now=now).values("pk")).delete()
        live = list(DriverSocket.objects.filter(driver_id=driver_id).order_by("opened_at", "pk").values_list("pk", "channel_name"))
        evicted = live[: max(0, len(live) - settings.DISPATCH_MAX_SOCKETS_PER_DRIVER + 1)]
        DriverSocket.objects.filter(pk__in=[pk for pk, _ in evicted]).delete()
        DriverSocket.objects.create(driver_id=driver_id, channel_name=channel_name, opened_at=now, seen_at=now)
    return [name for _, name in evicted]


def driver_socket_seen(*, driver_id: int, channel_name: str, now: datetime | None = None) -> bool:
    """The server still holds this socket (its timer): refresh the presence row, or write it
    again if a sweep dropped it while this process or the database was stalled.

    Returns False when the socket has no place any more: its row is gone and the driver holds
    as many sockets as allowed (it was replaced, and the word of it was lost), so it closes."""
    from availability.selectors import connected_sockets

    now = now or timezone.now()
    if DriverSocket.objects.filter(channel_name=channel_name).update(seen_at=now):
        return True
    if connected_sockets(now).filter(driver_id=driver_id).count() >= settings.DISPATCH_MAX_SOCKETS_PER_DRIVER:
        return False
    DriverSocket.objects.get_or_create(channel_name=channel_name, defaults={"driver_id": driver_id, "opened_at": now, "seen_at": now})
    return True


def driver_socket_closed(*, channel_name: str) -> None:
    """The socket closed. A refresh racing this close may write the row again: it then stops
    counting after the presence timeout like any row nobody vouches for."""
    DriverSocket.objects.filter(channel_name=channel_name).delete()


def drop_stale_sockets_due(*, now: datetime | None = None, limit: int = 5000) -> int:
    """The presence sweep: delete rows of sockets no server vouched for within the presence
    timeout (by the database's clock by default). They already stopped counting as connected;
    this keeps the table as small as the sockets really open. Safe to run twice."""
    stale_before = (now or database_now()) - timedelta(seconds=settings.DISPATCH_SOCKET_PRESENCE_TIMEOUT_S)
    stale = DriverSocket.objects.filter(seen_at__lt=stale_before).order_by("seen_at").values("pk")[:limit]
    deleted, _ = DriverSocket.objects.filter(pk__in=stale).delete()
    return deleted


# Sockets refreshed per statement by the process-wide socket timer (offers/socket_watch.py).
SOCKETS_SEEN_CHUNK = 1000


def driver_sockets_seen(*, sockets: Sequence[tuple[int, str]], now: datetime | None = None) -> set[str]:
    """The server still holds these (driver id, channel name) sockets: refresh their presence
    rows. A socket whose row is gone (a sweep dropped it while this process or the database
    stalled) goes through `driver_socket_seen`, which writes it again or finds it has no place.

    Returns the channel names of the sockets that have no place any more (they close)."""
    now = now or timezone.now()
    driver_of = {channel_name: driver_id for driver_id, channel_name in sockets}
    names = list(driver_of)
    missing: list[str] = []
    for start in range(0, len(names), SOCKETS_SEEN_CHUNK):
        chunk = names[start : start + SOCKETS_SEEN_CHUNK]
        if DriverSocket.objects.filter(channel_name__in=chunk).update(seen_at=now) < len(chunk):
            present = set(DriverSocket.objects.filter(channel_name__in=chunk).values_list("channel_name", flat=True))
            missing += [name for name in chunk if name not in present]
    return {name for name in missing if not driver_socket_seen(driver_id=driver_of[name], channel_name=name, now=now)}
