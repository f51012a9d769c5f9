"""Messages from sync code to channel-layer groups (dispatch.layer_outbox), on the real Redis
layer unless a test says otherwise: they arrive, in order, in batches, from any kind of
process; a Redis that is down never holds the caller up."""

import asyncio
import logging
import multiprocessing
import socket
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers, get_channel_layer

from dispatch import layer_outbox
from dispatch.channel_layers import RedisChannelLayer
from offers.notify import driver_frame_send, driver_frames_batched, driver_group


async def _listen(layer, groups):
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    return channel


async def _leave(layer, groups, channel):
    for group in groups:
        await layer.group_discard(group, channel)


def _receive_all(layer, channel, count, timeout=5):
    async def receive():
        return [await asyncio.wait_for(layer.receive(channel), timeout) for _ in range(count)]

    return async_to_sync(receive)()


@pytest.fixture
def listening():
    """A channel in the groups of drivers 801 and 802 (as a driver's socket is)."""
    layer = get_channel_layer()
    groups = [driver_group(801), driver_group(802)]
    channel = async_to_sync(_listen)(layer, groups)
    yield layer, channel
    async_to_sync(_leave)(layer, groups, channel)


@pytest.fixture
def batches(monkeypatch):
    """The batches the Redis layer is asked to send, as lists of (group, message)."""
    sent: list[list] = []
    original = RedisChannelLayer.group_send_many

    async def counting(self, messages):
        sent.append(list(messages))
        return await original(self, messages)

    monkeypatch.setattr(RedisChannelLayer, "group_send_many", counting)
    return sent


def test_the_caller_does_not_wait_and_the_frame_arrives(listening):
    layer, channel = listening
    started = time.perf_counter()
    driver_frame_send(801, {"type": "offer_withdrawn", "offer_id": 1, "reason": "expired"})
    handed_over_s = time.perf_counter() - started
    assert _receive_all(layer, channel, 1)[0]["frame"] == {"type": "offer_withdrawn", "offer_id": 1, "reason": "expired"}
    assert handed_over_s < 0.05


def test_frames_to_one_driver_arrive_in_the_order_they_were_sent_across_batches(listening):
    # more frames than one batch of the outbox holds (500); the sender waits for the receiver
    # now and then, so that the channel's capacity (100) is never reached
    layer, channel = listening
    received = []

    async def receive_while_sending():
        for _ in range(1200):
            received.append((await asyncio.wait_for(layer.receive(channel), 5))["frame"]["offer_id"])

    receiver = threading.Thread(target=async_to_sync(receive_while_sending))
    receiver.start()
    for n in range(1200):
        driver_frame_send(801, {"type": "offer_withdrawn", "offer_id": n, "reason": "expired"})
        if n % 90 == 89:  # never more than a channel's capacity waiting for the receiver
            deadline = time.monotonic() + 10
            while len(received) <= n and time.monotonic() < deadline:
                time.sleep(0.005)
    receiver.join(timeout=30)
    assert received == list(range(1200))


def test_a_burst_handed_over_together_goes_out_in_one_batch(listening, batches):
    # given an after-commit burst of 100 frames, as a sweep that withdraws 100 offers makes them
    layer, channel = listening
    with driver_frames_batched():
        for n in range(100):
            driver_frame_send(801 + n % 2, {"type": "offer_withdrawn", "offer_id": n, "reason": "expired"})
    assert layer_outbox.flush(timeout_s=5)
    # then the layer was asked once or twice (the notify module hands over 50 at a time), not 100 times
    assert 1 <= len(batches) <= 2 and sum(len(batch) for batch in batches) == 100
    assert sorted(message["frame"]["offer_id"] for message in _receive_all(layer, channel, 100)) == list(range(100))


@pytest.mark.django_db(transaction=True)
def test_the_frames_of_a_transactions_on_commit_callbacks_go_in_one_batch_when_it_is_wrapped(listening, batches):
    # given a transaction that withdraws 40 offers, each callback reading the database first
    from django.db import transaction

    from dispatch.models import Driver

    layer, channel = listening

    def withdrawn(n):
        Driver.objects.filter(pk=n).exists()
        driver_frame_send(801, {"type": "offer_withdrawn", "offer_id": n, "reason": "switched_off"})

    # when it commits inside driver_frames_batched
    with driver_frames_batched(), transaction.atomic():
        for n in range(40):
            transaction.on_commit(lambda n=n: withdrawn(n))
    assert layer_outbox.flush(timeout_s=5)
    # then its frames went to the layer in one batch, in order
    assert [len(batch) for batch in batches] == [40]
    assert [m["frame"]["offer_id"] for m in _receive_all(layer, channel, 40)] == list(range(40))


def test_frames_made_while_a_batch_is_on_its_way_go_in_the_next_one(listening, batches, monkeypatch):
    # given the layer slow to answer (a batch takes 50 ms)
    layer, channel = listening
    counting = RedisChannelLayer.group_send_many

    async def slow(self, messages):
        await asyncio.sleep(0.05)
        return await counting(self, messages)

    monkeypatch.setattr(RedisChannelLayer, "group_send_many", slow)
    # when 60 frames are sent one by one, faster than a batch goes
    for n in range(60):
        driver_frame_send(802, {"type": "offer_withdrawn", "offer_id": n, "reason": "expired"})
    assert layer_outbox.flush(timeout_s=5)
    # then they went in a few batches, not one trip each, and all arrived in order
    assert len(batches) <= 3
    assert [m["frame"]["offer_id"] for m in _receive_all(layer, channel, 60)] == list(range(60))


@pytest.fixture
def redis_that_never_answers(settings):
    """A channel layer pointed at a server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    settings.DISPATCH_LAYER_SEND_TIMEOUT_S = 0.3
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "dispatch.channel_layers.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": f"redis://127.0.0.1:{port}/0", "socket_timeout": 30, "socket_connect_timeout": 30}]},
        }
    }
    yield
    server.close()


def test_a_redis_that_hangs_never_holds_the_caller_and_the_batch_is_given_up_and_logged(redis_that_never_answers, caplog):
    caplog.set_level(logging.ERROR, logger="dispatch.layer_outbox")
    # when frames are sent while Redis hangs
    started = time.perf_counter()
    for n in range(20):
        driver_frame_send(801, {"type": "offer_withdrawn", "offer_id": n, "reason": "expired"})
    handed_over_s = time.perf_counter() - started
    # then the caller was not held up, and within the timeout the batch is given up and logged
    assert handed_over_s < 0.1
    started = time.perf_counter()
    assert layer_outbox.flush(timeout_s=5)
    assert time.perf_counter() - started < 2
    assert any("could not send" in record.getMessage() and "driver.frame" in record.getMessage() for record in caplog.records)


def test_a_full_outbox_drops_new_messages_and_says_so(redis_that_never_answers, settings, caplog):
    caplog.set_level(logging.ERROR, logger="dispatch.layer_outbox")
    settings.DISPATCH_LAYER_OUTBOX_MAX = 10
    for n in range(50):
        driver_frame_send(801, {"type": "offer_withdrawn", "offer_id": n, "reason": "expired"})
    assert layer_outbox.flush(timeout_s=5)
    assert any("outbox was full" in record.getMessage() for record in caplog.records)


def _child_sends_a_frame(result):
    try:
        from dispatch import layer_outbox as child_outbox

        inherited = child_outbox._inherited[-1][0]  # the parent's sender loop, untouched
        driver_frame_send(802, {"type": "offer_withdrawn", "offer_id": 2, "reason": "from the child"})
        flushed = child_outbox.flush(timeout_s=5)
        own = child_outbox._sender
        result.put((flushed, own is not None and own is not inherited and own.loop is not inherited.loop))
    except Exception as exc:  # the parent reports it
        result.put((False, repr(exc)))


def test_a_forked_child_sends_with_a_loop_of_its_own_and_the_parent_keeps_working(listening):
    # given a parent that has sent a frame (its sender loop and connection exist)
    layer, channel = listening
    driver_frame_send(801, {"type": "offer_withdrawn", "offer_id": 1, "reason": "from the parent"})
    assert _receive_all(layer, channel, 1)[0]["frame"]["reason"] == "from the parent"
    # when a child made by fork (as Celery's prefork pool makes its workers) sends one
    fork = multiprocessing.get_context("fork")
    result = fork.Queue()
    child = fork.Process(target=_child_sends_a_frame, args=(result,))
    child.start()
    child.join(timeout=30)
    flushed, has_own_loop = result.get(timeout=5)
    # then it arrives, sent through a loop the child made itself, and the parent still sends
    assert child.exitcode == 0 and flushed and has_own_loop is True
    assert _receive_all(layer, channel, 1)[0]["frame"]["reason"] == "from the child"
    driver_frame_send(801, {"type": "offer_withdrawn", "offer_id": 3, "reason": "from the parent again"})
    assert _receive_all(layer, channel, 1)[0]["frame"]["reason"] == "from the parent again"


def test_on_the_in_memory_layer_a_worker_thread_sends_through_the_servers_loop(settings):
    # given the embedded default: the in-memory layer, a server loop holding a socket's channel
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    arrived: list[dict] = []
    ready, done = threading.Event(), threading.Event()

    async def server():
        layer_outbox.server_loop_adopt()
        layer = get_channel_layer()
        channel = await _listen(layer, [driver_group(803)])
        ready.set()
        arrived.append(await asyncio.wait_for(layer.receive(channel), 5))
        done.set()

    server_thread = threading.Thread(target=lambda: asyncio.run(server()))
    server_thread.start()
    assert ready.wait(5)
    # when a thread of no loop (the embedded worker's) sends a frame
    driver_frame_send(803, {"type": "offer_withdrawn", "offer_id": 4, "reason": "embedded"})
    # then the server's loop gets it at once (the in-memory layer is touched from its own loop only)
    assert done.wait(2)
    server_thread.join(5)
    assert arrived[0]["frame"]["reason"] == "embedded"
