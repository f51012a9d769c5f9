"""`/ws/track/<token>/` on the real Redis channel layer: a page's socket follows its own order,
and only its own, whatever a client sends."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from audit.actors import Actor
from dispatch.asgi import application
from eta.selectors import travel_forget
from tests.tracking.conftest import assign, carry, token_of, webhook_order
from tracking.services import tracking_link_revoke
from usecases import drivers as driver_usecases
from usecases import orders as order_usecases

pytestmark = pytest.mark.django_db(transaction=True)


def run(scenario):
    return async_to_sync(scenario)()


async def follow(token, address="198.51.100.7"):
    communicator = WebsocketCommunicator(application, f"/ws/track/{token}/")
    communicator.scope["client"] = (address, 50000)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def frame(communicator, timeout=3):
    return json.loads(await communicator.receive_from(timeout=timeout))


def test_the_socket_sends_the_state_then_each_change_and_the_carrying_drivers_positions(client, received, settings):
    settings.DISPATCH_POSITION_MIN_INTERVAL_S = 0  # every fix kept and shown: the positions come faster than a phone's
    order, token = received

    async def scenario():
        socket = await follow(token)
        first = await frame(socket)
        assert first["type"] == "state" and first["state"]["status"] == "received" and first["state"]["code"] == order.code
        driver = await database_sync_to_async(assign)(order)
        assigned = await frame(socket)
        assert assigned["state"]["status"] == "assigned" and assigned["state"]["driver"]["first_name"] == "Rosa"
        assert assigned["state"]["position"] is None
        await database_sync_to_async(order_usecases.order_pick_up)(order_id=order.pk, driver=driver)
        assert (await frame(socket))["state"]["status"] == "picked_up"
        await database_sync_to_async(driver_usecases.driver_position_report)(driver_id=driver.pk, lat=52.515, lon=13.395)
        moved = await frame(socket)
        assert moved["type"] == "position" and (moved["position"]["lat"], moved["position"]["lon"]) == (52.515, 13.395)
        assert moved["eta"]["earliest"] < moved["eta"]["latest"]  # the arrival the new position leads to
        await database_sync_to_async(order_usecases.order_deliver)(order_id=order.pk, driver=driver)
        ended = await frame(socket)
        assert ended["state"]["status"] == "delivered" and ended["state"]["position"] is None
        await socket.disconnect()

    run(scenario)


def test_a_socket_never_receives_another_orders_events_whatever_it_asks(client, shop):
    mine, mine_body = webhook_order(client, shop, lat=52.52, lon=13.40)
    other, other_body = webhook_order(client, shop, lat=52.52, lon=13.40)

    async def scenario():
        socket = await follow(token_of(mine_body["tracking_url"]))
        assert (await frame(socket))["state"]["code"] == mine.code
        await socket.send_to(text_data=json.dumps({"type": "subscribe", "order": other.pk, "token": token_of(other_body["tracking_url"])}))
        refused = await frame(socket)
        assert refused["type"] == "error" and refused["code"] == "read_only"
        other_driver = await database_sync_to_async(carry)(other)
        await database_sync_to_async(driver_usecases.driver_position_report)(driver_id=other_driver.pk, lat=52.5, lon=13.3)
        assert await socket.receive_nothing(timeout=1)
        await socket.disconnect()

    run(scenario)


def test_a_withdrawn_link_closes_its_open_pages(client, received):
    order, token = received

    async def scenario():
        socket = await follow(token)
        await frame(socket)
        await database_sync_to_async(tracking_link_revoke)(order_id=order.pk, reason="wrong customer", actor=Actor.system("test"), now=timezone.now())
        gone = await frame(socket)
        assert gone == {"type": "gone", "status": "revoked"}
        closed = await socket.receive_output(timeout=3)
        assert closed == {"type": "websocket.close", "code": 4410}

    run(scenario)


def test_an_unknown_token_is_closed_with_its_code(db):
    async def scenario():
        socket = await follow("B" * 32)
        closed = await socket.receive_output(timeout=3)
        assert closed == {"type": "websocket.close", "code": 4404}

    run(scenario)


def test_a_page_opened_on_an_order_under_way_gets_its_arrival_at_once(client, received):
    """The first state of an order on its way reads the travel profile and the proofs: that is
    done on a database thread, never in the socket's event loop."""
    order, token = received
    carry(order)
    travel_forget()  # as in a process that has not read the profiles yet

    async def scenario():
        socket = await follow(token)
        first = await frame(socket)
        assert first["state"]["status"] == "picked_up" and first["state"]["eta"]["earliest"] < first["state"]["eta"]["latest"]
        await socket.disconnect()

    run(scenario)
