"""Presence rows of all the sockets one server process holds, refreshed together.

A service (it writes), kept beside offers/services.py's `driver_socket_*` while that module is
being restructured: the process-wide socket timer (offers/socket_watch.py) vouches for every
socket it holds in one UPDATE per thousand, where each socket used to do it on a timer of
its own, one query per socket per tick.
"""

from collections.abc import Sequence
from datetime import datetime

from django.utils import timezone

from offers import services
from offers.models import DriverSocket

CHUNK = 1000


def driver_sockets_seen(*, sockets: Sequence[tuple[int, str]], now: datetime | None = None) -> set[str]:
    """The server still holds these (driver id, channel name) sockets: refresh their presence
    rows. A socket whose row is gone (a sweep dropped it while this process or the database
    stalled) goes through `driver_socket_seen`, which writes it again or finds it has no place.

    Returns the channel names of the sockets that have no place any more (they close)."""
    now = now or timezone.now()
    driver_of = {channel_name: driver_id for driver_id, channel_name in sockets}
    names = list(driver_of)
    missing: list[str] = []
    for start in range(0, len(names), CHUNK):
        chunk = names[start : start + CHUNK]
        if DriverSocket.objects.filter(channel_name__in=chunk).update(seen_at=now) < len(chunk):
            present = set(DriverSocket.objects.filter(channel_name__in=chunk).values_list("channel_name", flat=True))
            missing += [name for name in chunk if name not in present]
    return {name for name in missing if not services.driver_socket_seen(driver_id=driver_of[name], channel_name=name, now=now)}
