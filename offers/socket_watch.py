"""The timer of the driver sockets one process holds.

Every DISPATCH_SOCKET_CREDENTIALS_RECHECK_S one task per event loop vouches for the presence
rows of all its authenticated sockets and re-checks all their credentials, in one trip to a
database thread and a few queries; a socket whose row has no place any more is told it was
replaced, and one whose token or user was revoked is closed. Each socket used to hold a task
and a timer of its own and make two queries a tick: 10,000 idle sockets asked 4,000 queries a
second of one database thread, and their tasks cost memory.
"""

import asyncio
import logging
from typing import TYPE_CHECKING

from channels.db import database_sync_to_async
from django.conf import settings

from availability.services import driver_sockets_seen
from offers import selectors

if TYPE_CHECKING:
    from offers.consumers import DriverConsumer

logger = logging.getLogger(__name__)


class _Watch:
    """The authenticated sockets of one event loop, and the task that ticks for them."""

    def __init__(self) -> None:
        self.sockets: dict[str, DriverConsumer] = {}
        self.task: asyncio.Task[None] | None = None


_watches: dict[asyncio.AbstractEventLoop, _Watch] = {}


def socket_watch_add(consumer: "DriverConsumer") -> None:
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        for stale in [known for known in _watches if known.is_closed()]:
            del _watches[stale]
        watch = _watches[loop] = _Watch()
    watch.sockets[consumer.channel_name] = consumer
    if watch.task is None or watch.task.done():
        watch.task = loop.create_task(_tick_while_sockets(watch))


def socket_watch_discard(consumer: "DriverConsumer") -> None:
    watch = _watches.get(asyncio.get_running_loop())
    if watch is not None:
        watch.sockets.pop(consumer.channel_name, None)


async def _tick_while_sockets(watch: _Watch) -> None:
    while watch.sockets:
        await asyncio.sleep(settings.DISPATCH_SOCKET_CREDENTIALS_RECHECK_S)
        consumers = list(watch.sockets.values())
        if not consumers:
            break
        try:
            replaced, revoked = await database_sync_to_async(_sockets_check)([consumer.watched for consumer in consumers])
        except Exception:  # the database blinked: keep the sockets, try again next tick
            logger.exception("driver sockets: the presence and credentials check failed")
            continue
        for consumer in consumers:
            try:
                if consumer.channel_name in replaced:
                    await consumer.socket_replaced({})
                elif consumer.channel_name in revoked:
                    await consumer.credentials_revoked()
            except Exception:  # one socket's failure must not stop the others' timer
                logger.exception("driver socket: closing after the presence and credentials check failed")


def _sockets_check(sockets: list[tuple[str, int, str, int]]) -> tuple[set[str], set[str]]:
    """For (channel name, driver id, token key, user id) of each socket: the channel names
    that have no place any more, and those whose credentials were revoked."""
    replaced = driver_sockets_seen(sockets=[(driver_id, channel_name) for channel_name, driver_id, _, _ in sockets])
    valid = selectors.driver_credentials_valid_many([(key, user_id) for _, _, key, user_id in sockets])
    revoked = {channel_name for channel_name, _, key, user_id in sockets if (key, user_id) not in valid}
    return replaced, revoked
