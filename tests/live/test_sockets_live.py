"""The driver socket on real ASGI servers with a real WebSocket client."""

import asyncio
import json
import os

import pytest
import redis
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token
from websockets.asyncio.client import connect

from dispatch import services as dispatch_services
from dispatch.models import Driver, Order
from offers.models import Offer
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import order_intake
from tests.live.servers import uvicorn_servers
from usecases import dispatching
from usecases import intake as intake_usecases

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("v2_offers_on")]


def ws_url(base):
    return base.replace("http://", "ws://") + "/ws/driver/"


async def open_ready(url, token, ready_id="ready"):
    ws = await connect(
        url, additional_headers={"Authorization": f"Token {token}", "X-App-Version": "2.4.0"}, compression=None, open_timeout=60, ping_interval=None
    )
    await ws.send(json.dumps({"type": "heartbeat", "id": ready_id}))
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
        if frame.get("id") == ready_id:
            assert frame["type"] == "ack", frame
            return ws, frames
        frames.append(frame)


def test_twenty_drivers_on_two_server_processes_race_to_accept_one_order():
    zone = ZoneFactory()
    zone.offer_fanout = 20
    zone.save()
    channel = ShopChannelFactory()
    drivers = [DriverFactory() for _ in range(20)]
    tokens = [Token.objects.create(user=d.user).key for d in drivers]
    with uvicorn_servers(2) as urls:

        async def scenario():
            from channels.db import database_sync_to_async

            sockets = [(await open_ready(ws_url(urls[i % 2]), tokens[i]))[0] for i in range(20)]
            # every driver now speaks v2: the order is offered to all twenty (fan-out 20)
            order = await database_sync_to_async(_offered_order)(channel)
            offers = []
            for ws in sockets:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                assert frame["type"] == "offer", frame
                offers.append(frame["offer"]["id"])
            await asyncio.gather(*(ws.send(json.dumps({"type": "accept", "id": f"acc-{i}", "offer_id": offers[i]})) for i, ws in enumerate(sockets)))
            answers = []
            for i, ws in enumerate(sockets):
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                    if frame.get("id") == f"acc-{i}":
                        answers.append(frame)
                        break
            for ws in sockets:
                await ws.close()
            return order, answers

        order, answers = async_to_sync(scenario)()
    accepted = [a for a in answers if a["type"] == "ack"]
    taken = [a for a in answers if a["type"] == "error" and a["code"] == "offer_taken"]
    assert len(accepted) == 1 and len(taken) == 19, answers
    order.refresh_from_db()
    assert order.status == Order.Status.ASSIGNED and order.driver_id == Offer.objects.get(order=order, state="accepted").driver_id
    assert sum(Driver.objects.values_list("active_order_count", flat=True)) == 1


def test_a_reconnect_storm_of_two_thousand_sockets_gets_no_error_and_bounded_connections():
    ZoneFactory()
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"storm-{i}") for i in range(2000)])
    Driver.objects.bulk_create([Driver(user=u, name=f"Storm {i}", phone=f"+1{i:07d}") for i, u in enumerate(users)])
    tokens = [t.key for t in Token.objects.bulk_create([Token(user=u, key=f"{i:040d}") for i, u in enumerate(users)])]
    # Clients of the service's Redis database only: other users of the same Redis server (another
    # checkout's tests on another database) are not the server's connections.
    redis_client = redis.Redis.from_url(os.environ["REDIS_URL"])
    redis_db = str(redis_client.connection_pool.connection_kwargs.get("db", 0))
    peaks = {"postgres": 0, "redis": 0}

    def sample():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            peaks["postgres"] = max(peaks["postgres"], cursor.fetchone()[0])
        peaks["redis"] = max(peaks["redis"], sum(1 for client in redis_client.client_list() if str(client.get("db")) == redis_db))

    with uvicorn_servers(1, extra_env={"REDIS_MAX_CONNECTIONS": "50"}) as [url]:

        async def storm():
            errors = []

            async def one(token, i):
                try:
                    ws, _ = await open_ready(ws_url(url), token, ready_id=f"r{i}")
                    return ws
                except Exception as exc:
                    errors.append(repr(exc))
                    return None

            async def watch(stop):
                from channels.db import database_sync_to_async

                while not stop.is_set():
                    await database_sync_to_async(sample)()
                    await asyncio.sleep(0.2)

            stop = asyncio.Event()
            watcher = asyncio.create_task(watch(stop))
            sockets = await asyncio.gather(*(one(token, i) for i, token in enumerate(tokens)))
            stop.set()
            await watcher
            opened = [ws for ws in sockets if ws is not None]
            for ws in opened:
                await ws.close()
            return len(opened), errors

        opened, errors = async_to_sync(storm)()
    assert errors == [] and opened == 2000
    assert Driver.objects.filter(v2_connected_at__isnull=False).count() == 2000
    # connections stay bounded: PostgreSQL by the server's thread pool, Redis by the layer's pool
    assert peaks["postgres"] <= 40, peaks
    assert peaks["redis"] <= 60, peaks


def _offered_order(channel):
    order = intake_usecases.order_receive(channel=channel, intake=order_intake(), actor=dispatch_services.SYSTEM)[0]
    dispatching.order_dispatch(order_id=order.pk)
    return order


def test_a_message_larger_than_any_frame_is_refused_by_the_server_before_it_is_read():
    # uvicorn would otherwise hold messages of up to 16 MiB in memory before the consumer could
    # refuse them: --ws-max-size closes the socket (1009) at the limit, and other drivers go on.
    from django.conf import settings
    from websockets.exceptions import ConnectionClosed

    hog, other = DriverFactory(), DriverFactory()
    tokens = [Token.objects.create(user=d.user).key for d in (hog, other)]
    with uvicorn_servers(1) as (url,):

        async def scenario():
            hog_ws, _ = await open_ready(ws_url(url), tokens[0])
            other_ws, _ = await open_ready(ws_url(url), tokens[1])
            await hog_ws.send("x" * (settings.DISPATCH_WS_MAX_MESSAGE_BYTES + 1))
            try:
                await asyncio.wait_for(hog_ws.recv(), timeout=10)
                raise AssertionError("the oversized message was read")
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1009, closed
            await other_ws.send(json.dumps({"type": "heartbeat", "id": "still-here"}))
            assert json.loads(await asyncio.wait_for(other_ws.recv(), timeout=10))["id"] == "still-here"
            await other_ws.close()

        async_to_sync(scenario)()
