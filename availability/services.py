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
from django.db import connection, transaction
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_record
from availability.models import DriverSocket, PositionFix
from dispatch.clock import database_now
from dispatch.errors import DriverOffline, DriverUnavailable, FeatureOff, IllegalTransition, InvalidInput, NotFound
from dispatch.models import Driver
from dispatch.rows import rows_insert

A = Driver.Availability
_DRIVERS = Driver._meta.db_table

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


@dataclass(frozen=True)
class PositionTaken:
    """A position the driver's row took: when the phone took it, and whether it also went into
    the position history (held an order, and the first fix of its interval)."""

    recorded_at: datetime
    is_kept: bool


def driver_position_update(
    *, driver_id: int, lat: float, lon: float, at: datetime | None = None, accuracy_m: float | None = None, now: datetime | None = None
) -> PositionTaken | None:
    """Record where the driver is; None for a fix older than the one held (it arrived late and
    changes nothing). Positions are telemetry, not state: they are not audited, and the audit
    trail holds no coordinates.

    One statement: the driver's row takes the newest fix; the history (PositionFix) takes it
    only while the driver holds an order, and at most one a DISPATCH_POSITION_MIN_INTERVAL_S
    (the fixes between are coalesced into the row, not refused). A driver who is offline is
    refused (DriverOffline): nobody is located who said they are not working.
    """
    now = now or timezone.now()
    position_problem = _position_problem(lat=lat, lon=lon, accuracy_m=accuracy_m)
    if position_problem:
        raise InvalidInput(position_problem, lat=lat, lon=lon, accuracy_m=accuracy_m)
    # Never a position from the future: a phone clock running ahead (v1 apps send what they
    # have, which their schema allows) is taken as now, so it cannot pin the position.
    at = min(at, now) if at else now
    save = Driver._meta.get_field("last_position_at").get_db_prep_save
    at_db, now_db = save(at, connection=connection), save(now, connection=connection)
    keep_before_db = save(now - timedelta(seconds=settings.DISPATCH_POSITION_MIN_INTERVAL_S), connection=connection)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_DRIVERS} SET last_lat = %s, last_lon = %s, last_position_at = %s, "  # noqa: S608 (names only)
            "position_kept_at = CASE WHEN active_order_count > 0 AND (position_kept_at IS NULL OR position_kept_at <= %s) THEN %s ELSE position_kept_at END "
            "WHERE id = %s AND availability <> %s AND (last_position_at IS NULL OR last_position_at <= %s) "
            "RETURNING position_kept_at = %s",
            [lat, lon, at_db, keep_before_db, now_db, driver_id, A.OFFLINE, at_db, now_db],
        )
        row = cursor.fetchone()
        if row is None:
            _position_refusal_raise(driver_id)
            return None  # older than the position held
        is_kept = bool(row[0])  # NULL (never kept) is not kept either
        if is_kept:
            rows_insert([PositionFix(driver_id=driver_id, lat=lat, lon=lon, accuracy_m=accuracy_m, recorded_at=at, received_at=now)])
    return PositionTaken(recorded_at=at, is_kept=is_kept)


def _position_problem(*, lat: float, lon: float, accuracy_m: float | None) -> str | None:
    """Why a fix is refused, or None: the one place positions are validated, for every entry point."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return "latitude must be within -90..90 and longitude within -180..180"
    if accuracy_m is not None and not (0 <= accuracy_m <= settings.DISPATCH_POSITION_MAX_ACCURACY_M):
        return f"accuracy_m must be within 0..{settings.DISPATCH_POSITION_MAX_ACCURACY_M} metres"
    return None


def _position_refusal_raise(driver_id: int) -> None:
    """No row took the fix: say why when it is a refusal (no such driver, offline)."""
    availability = Driver.objects.filter(pk=driver_id).values_list("availability", flat=True).first()
    if availability is None:
        raise NotFound(f"driver {driver_id} not found")
    if availability == A.OFFLINE:
        raise DriverOffline("You are offline: go online to share your position.", driver=driver_id)


def position_history_delete_due(*, now: datetime | None = None, limit: int = 10_000) -> int:
    """Delete position history older than DISPATCH_POSITION_RETENTION_DAYS, oldest first, at
    most `limit` rows a run (the sweep runs again soon); returns how many went."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.DISPATCH_POSITION_RETENTION_DAYS)
    ids = list(PositionFix.objects.filter(received_at__lt=cutoff).order_by("received_at").values_list("pk", flat=True)[:limit])
    return PositionFix.objects.filter(pk__in=ids).delete()[0] if ids else 0


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
