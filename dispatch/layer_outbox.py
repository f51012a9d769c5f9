"""Messages from sync code (views, Celery tasks, sweeps) to channel-layer groups, sent in
batches by one long-lived event loop instead of a new one per message.

`async_to_sync(layer.group_send)` from a thread without an event loop (a Celery worker, a
sweep) made a thread, an event loop and a Redis connection for every message: 3.6-4.7 ms
each. Here a sync caller only appends to an outbox and returns; the loop that owns the layer
takes everything waiting in one go and sends it in one batch (two round trips to Redis
whatever its size, see `dispatch.channel_layers`): messages that come faster than Redis
answers share a batch, and a burst handed over at once (offers.notify.driver_frames_batched)
is one batch.

Which loop sends:
- in a thread that asgiref runs for an event loop (a view on the ASGI server, a consumer's
  database call, a test's loop), that loop: it owns the layer's connections there, and the
  in-memory layer of the embedded default must only be touched from it;
- else the loop of the ASGI server in this process, once it has served something (the
  embedded default's worker and beat threads);
- else the process's own sender loop, on a daemon thread started at the first message (a
  Celery worker, a management command).

A child process made by fork (Celery's prefork pool) starts with nothing: the parent's loop,
thread and connections are left untouched, never used, and a new loop is made when the child
first sends. The database is the truth and a message is a hint: when Redis is down or slow a
batch is given up after DISPATCH_LAYER_SEND_TIMEOUT_S and logged, the caller never waits for
it, and an outbox holding DISPATCH_LAYER_OUTBOX_MAX messages drops new ones (logged).
"""

import asyncio
import atexit
import logging
import os
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from asgiref.sync import SyncToAsync
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings

from dispatch.channel_layers import GroupMessage, group_send_many

logger = logging.getLogger(__name__)

BATCH_MAX_MESSAGES = 500  # one script call to Redis stays small; the next batch follows at once


class _Outbox:
    """Messages waiting for one event loop to send them, in the order they were put."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        # Messages, and events a flush waits on (set once everything before them was tried).
        self.waiting: deque[GroupMessage | threading.Event] = deque()
        self.message_count = 0
        self.is_draining = False  # a drain is scheduled or running on the loop
        self.dropped = 0
        self.task: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference

    def put(self, items: Sequence[GroupMessage | threading.Event]) -> None:
        with self.lock:
            room = settings.DISPATCH_LAYER_OUTBOX_MAX - self.message_count
            for item in items:
                if isinstance(item, threading.Event):
                    self.waiting.append(item)
                elif room > 0:
                    self.waiting.append(item)
                    self.message_count += 1
                    room -= 1
                else:
                    self.dropped += 1
            if self.is_draining:
                return
            self.is_draining = True
        try:
            self.loop.call_soon_threadsafe(self._drain_start)
        except RuntimeError:  # the loop closed since it was chosen
            with self.lock:
                self.is_draining = False
            raise

    def _drain_start(self) -> None:
        self.task = self.loop.create_task(self._drain())

    def _take(self) -> tuple[list[GroupMessage], list[threading.Event], bool]:
        """The next batch and the flushes it completes; False when nothing is left."""
        with self.lock:
            batch: list[GroupMessage] = []
            events: list[threading.Event] = []
            while self.waiting and len(batch) < BATCH_MAX_MESSAGES:
                item = self.waiting.popleft()
                if isinstance(item, threading.Event):
                    events.append(item)
                else:
                    batch.append(item)
            self.message_count -= len(batch)
            dropped, self.dropped = self.dropped, 0
            if not batch and not events:
                self.is_draining = False
                return batch, events, False
        if dropped:
            logger.error("the channel-layer outbox was full: %s message(s) dropped", dropped)
        return batch, events, True

    async def _drain(self) -> None:
        while True:
            batch, events, has_more = self._take()
            if not has_more:
                return
            if batch:
                await self._send(batch)
            for event in events:
                event.set()

    async def _send(self, batch: list[GroupMessage]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            await asyncio.wait_for(group_send_many(layer, batch), timeout=settings.DISPATCH_LAYER_SEND_TIMEOUT_S)
        except Exception as exc:  # a message is a hint: log it and carry on with the next batch
            kinds = sorted({str(message.get("type")) for _, message in batch})
            logger.error("could not send %s message(s) (%s) to the channel layer: %r", len(batch), ", ".join(kinds), exc)


class _SenderLoop:
    """The process's own event loop for sync callers, on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="channel-layer-sender", daemon=True)
        self.thread.start()


_lock = threading.Lock()
_outboxes: dict[asyncio.AbstractEventLoop, _Outbox] = {}
_sender: _SenderLoop | None = None
_server_loop: asyncio.AbstractEventLoop | None = None
# What a forked child inherited from its parent: kept referenced and never touched. Closing
# or collecting the parent's loop or connections in the child would change the epoll set and
# sockets the child shares with its parent.
_inherited: list[Any] = []


def server_loop_adopt() -> None:
    """Called from the ASGI application's loop: sync callers in this process that asgiref does
    not run (the embedded default's worker and beat threads) send through this loop."""
    global _server_loop
    loop = asyncio.get_running_loop()
    if _server_loop is not loop:
        _server_loop = loop


def _loop_for_this_thread() -> asyncio.AbstractEventLoop:
    global _sender
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid():
        loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
        if loop is not None and loop.is_running():
            return loop  # type: ignore[no-any-return]
    server_loop = _server_loop
    if server_loop is not None and server_loop.is_running():
        return server_loop
    with _lock:
        if _sender is None:
            _sender = _SenderLoop()
        return _sender.loop


def _outbox() -> _Outbox:
    loop = _loop_for_this_thread()
    with _lock:
        outbox = _outboxes.get(loop)
        if outbox is None:
            for stale in [known for known in _outboxes if known.is_closed()]:
                del _outboxes[stale]
            outbox = _outboxes[loop] = _Outbox(loop)
        return outbox


def _put(items: Sequence[GroupMessage | threading.Event]) -> None:
    try:
        _outbox().put(items)
    except RuntimeError:
        _outbox().put(items)  # the chosen loop closed in between: the next choice is a live one


def group_send(group: str, message: dict[str, Any]) -> None:
    """Send a message to a group, soon, without waiting for it."""
    _put([(group, message)])


def group_send_all(messages: Sequence[GroupMessage]) -> None:
    """Send each message to its group, in order, soon, in one batch; without waiting."""
    if messages:
        _put(list(messages))


def flush(timeout_s: float | None = None) -> bool:
    """Wait until every message this thread's outbox held has been sent or given up.

    False when the wait timed out, or when called on the sending loop's own thread (which
    cannot wait for itself)."""
    loop = _loop_for_this_thread()
    if loop.is_running() and _loop_thread_is_current(loop):
        return False
    done = threading.Event()
    _put([done])
    return done.wait(settings.DISPATCH_LAYER_SEND_TIMEOUT_S * 2 if timeout_s is None else timeout_s)


def _loop_thread_is_current(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _forget_parent_after_fork() -> None:
    """In a forked child: start from nothing (see the module's docstring)."""
    global _lock, _sender, _server_loop, _outboxes
    _inherited.append((_sender, _server_loop, _outboxes, dict(channel_layers.backends)))
    channel_layers.backends.clear()  # a new layer, with its own connections and client prefix
    _lock = threading.Lock()
    _sender, _server_loop, _outboxes = None, None, {}


def flush_before_exit() -> None:
    """Give what the process's own sender loop holds a last chance to go (bounded): at exit,
    and when a Celery pool process ends (it skips atexit)."""
    if _sender is not None and _sender.thread.is_alive():
        flush(timeout_s=settings.DISPATCH_LAYER_SEND_TIMEOUT_S)


os.register_at_fork(after_in_child=_forget_parent_after_fork)
atexit.register(flush_before_exit)
