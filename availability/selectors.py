"""Reads of drivers' availability that more than one caller needs."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from availability.models import DriverSocket
from dispatch.models import Driver

A = Driver.Availability


def silent_since(now: datetime) -> datetime:
    """A driver not heard from since before this is silent: the one definition, for the
    silence sweep and the escalation of orders held by a silent driver."""
    return now - timedelta(seconds=settings.DISPATCH_HEARTBEAT_TIMEOUT_S)


def silent_drivers(now: datetime) -> QuerySet[Driver]:
    """Drivers not offline who have not been heard from within the heartbeat timeout, longest silent first."""
    heard_before = silent_since(now)
    silent = Driver.objects.filter(~Q(availability=A.OFFLINE), Q(last_heartbeat_at__lt=heard_before) | Q(last_heartbeat_at__isnull=True))
    return silent.order_by(F("last_heartbeat_at").asc(nulls_first=True), "pk")


def breaks_over(now: datetime) -> QuerySet[Driver]:
    """Drivers whose break has run its length by `now`."""
    return Driver.objects.filter(availability=A.ON_BREAK, break_ends_at__lte=now).order_by("break_ends_at", "pk")


def deactivated_not_offline() -> QuerySet[Driver]:
    """Drivers whose account is deactivated but who are still marked online or on a break."""
    return Driver.objects.filter(user__is_active=False).exclude(availability=A.OFFLINE).order_by("pk")


def connected_sockets(now: datetime | None = None) -> QuerySet[DriverSocket]:
    """Open driver sockets: presence rows a server vouched for within the presence timeout.

    The one definition of "connected", for push, /metrics and everything else. A row left
    behind by a dead server stops counting here on its own; the sweep only tidies up.
    """
    return DriverSocket.objects.filter(seen_at__gte=_vouched_since(now))


def driver_is_connected(driver_id: int) -> bool:
    """`connected_sockets`' rule for one driver, in SQL text: asked after every offer made."""
    seen_after = DriverSocket._meta.get_field("seen_at").get_db_prep_value(_vouched_since(None), connection)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {DriverSocket._meta.db_table} WHERE driver_id = %s AND seen_at >= %s LIMIT 1", [driver_id, seen_after])  # noqa: S608
        return cursor.fetchone() is not None


def _vouched_since(now: datetime | None) -> datetime:
    """A socket is connected while a server vouched for it since this moment."""
    return (now or timezone.now()) - timedelta(seconds=settings.DISPATCH_SOCKET_PRESENCE_TIMEOUT_S)
