"""The driver socket through channels' WebsocketCommunicator, on the real Redis channel layer."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from availability.models import DriverSocket
from dispatch.asgi import application
from dispatch.models import Driver, Order
from offers.models import Offer
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("v2_offers_on", "v2_availability_on")]


def token_for(driver):
    return Token.objects.get_or_create(user=driver.user)[0].key


def run(scenario):
    return async_to_sync(scenario)()


async def connect(token=None, app_version="2.3.0", state=None, wait=True):
    """Open a socket; with a token, wait until the server has authenticated it.

    A consumer handles one message at a time, so the ack of a first heartbeat means the
    connect (and the state frames it sends) is done. Those frames go into `state`.
    """
    headers = [(b"x-app-version", app_version.encode())]
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/driver/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    if token and wait:
        await communicator.send_to(text_data=json.dumps({"type": "heartbeat", "id": "__ready__"}))
        while (frame := await receive(communicator))["id" if "id" in frame else "type"] != "__ready__":
            if state is not None:
                state.append(frame)
    return communicator


async def receive(communicator, timeout=3):
    return json.loads(await communicator.receive_from(timeout=timeout))


async def send(communicator, frame):
    await communicator.send_to(text_data=json.dumps(frame))
    return await receive(communicator)


@pytest.fixture
def channel():
    ZoneFactory()
    return ShopChannelFactory()


def test_an_offer_reaches_the_socket_and_accepting_there_assigns_the_order(channel):
    driver = DriverFactory()
    token = token_for(driver)

    async def scenario():
        ws = await connect(token)
        from channels.db import database_sync_to_async

        order = await database_sync_to_async(receive_order)(channel)
        offer_frame = await receive(ws)
        assert offer_frame["type"] == "offer" and offer_frame["offer"]["order"]["id"] == order.pk
        assert "customer_phone" not in offer_frame["offer"]["order"]
        ack = await send(ws, {"type": "accept", "id": "m1", "offer_id": offer_frame["offer"]["id"]})
        assert ack == {"type": "ack", "id": "m1", "offer_id": offer_frame["offer"]["id"], "result": "accepted", "order_id": order.pk}
        result = await receive(ws)
        assert result["type"] == "offer_result" and result["result"] == "accepted" and result["order"]["status"] == "assigned"
        # the same accept again (a resend after a reconnect): the same answer
        again = await send(ws, {"type": "accept", "id": "m2", "offer_id": offer_frame["offer"]["id"]})
        assert again["result"] == "accepted" and again["id"] == "m2"
        await ws.disconnect()
        return order

    order = run(scenario)
    order.refresh_from_db()
    assert (order.status, order.driver_id) == (Order.Status.ASSIGNED, driver.pk)
    driver.refresh_from_db()
    assert driver.v2_connected_at is not None and driver.app_version == "2.3.0" and not DriverSocket.objects.filter(driver=driver).exists()


def test_first_frame_authentication_and_state_again_on_reconnect(channel):
    driver = DriverFactory(capacity=2)
    token = token_for(driver)
    # v2 only after the app has connected once: this first order is assigned the v1 way
    first = receive_order(channel)
    assert first.driver_id == driver.pk

    async def scenario():
        ws = await connect()
        ack = await send(ws, {"type": "auth", "id": 1, "token": token, "app_version": "2.3.0"})
        assert ack == {"type": "ack", "id": 1, "driver_id": driver.pk}
        update = await receive(ws)
        assert update["type"] == "order_update" and update["order"]["id"] == first.pk
        await ws.disconnect()

    run(scenario)
    second = receive_order(channel)  # now the driver speaks v2: an offer
    pending = Offer.objects.get(order=second, state=Offer.State.PENDING)

    async def reconnect():
        frames = []
        ws = await connect(token, state=frames)
        assert {f["type"] for f in frames} == {"offer", "order_update"}
        assert next(f for f in frames if f["type"] == "offer")["offer"]["id"] == pending.pk
        await ws.disconnect()

    run(reconnect)


def test_a_wrong_token_gets_an_error_frame_and_the_socket_closes():
    async def scenario():
        ws = await connect("not-a-token", wait=False)
        frame = await receive(ws)
        assert frame["type"] == "error" and frame["code"] == "unauthenticated"
        output = await ws.receive_output(timeout=2)
        assert output == {"type": "websocket.close", "code": 4401}

    run(scenario)


def test_a_socket_that_never_authenticates_is_closed(settings):
    settings.DISPATCH_SOCKET_AUTH_TIMEOUT_S = 0.2

    async def scenario():
        ws = await connect()
        frame = await receive(ws)
        assert frame["code"] == "unauthenticated"
        assert (await ws.receive_output(timeout=2))["code"] == 4401

    run(scenario)


BAD_FRAMES = [
    ("not json at all", None, "invalid_json"),
    ("[1, 2]", None, "invalid_frame"),
    (json.dumps({"type": "heartbeat"}), None, "missing_id"),
    (json.dumps({"type": "heartbeat", "id": True}), None, "missing_id"),
    (json.dumps({"type": "teleport", "id": "a"}), "a", "unknown_type"),
    (json.dumps({"type": "accept", "id": "b"}), "b", "invalid_input"),
    (json.dumps({"type": "accept", "id": "c", "offer_id": "12"}), "c", "invalid_input"),
    (json.dumps({"type": "accept", "id": "d", "offer_id": 999999}), "d", "not_found"),
    (json.dumps({"type": "decline", "id": "e", "offer_id": 1, "reason": 5}), "e", "invalid_input"),
    (json.dumps({"type": "location", "id": "f", "lat": 91, "lon": 0}), "f", "invalid_input"),
    (json.dumps({"type": "location", "id": "g", "lat": "52", "lon": 13}), "g", "invalid_input"),
    (json.dumps({"type": "location", "id": "h", "lat": 52, "lon": 13, "recorded_at": "yesterday"}), "h", "invalid_input"),
    (json.dumps({"type": "availability", "id": "i", "state": "asleep"}), "i", "invalid_input"),
    (json.dumps({"type": "availability", "id": "j", "state": "break"}), "j", "invalid_input"),
    (json.dumps({"type": "availability", "id": "k", "state": "break", "minutes": 100000}), "k", "invalid_input"),
    (json.dumps({"type": "availability", "id": "l", "state": "break", "minutes": 0}), "l", "invalid_input"),
    ("[" * 50_000 + "]" * 50_000, None, "invalid_frame"),
]


def test_bad_frames_get_error_frames_change_nothing_and_keep_the_socket_open(channel):
    driver = DriverFactory()
    other = DriverFactory()
    token = token_for(driver)
    order = receive_order(channel)  # v1 assignment to one of them; nothing pending
    events_before = AuditEvent.objects.count()

    async def scenario():
        ws = await connect(token)
        for text, message_id, code in BAD_FRAMES:
            await ws.send_to(text_data=text)
            frame = await receive(ws)
            assert frame["type"] == "error" and frame["code"] == code and frame["id"] == message_id, (text[:60], frame)
        # still open and working
        assert (await send(ws, {"type": "heartbeat", "id": "alive"}))["type"] == "ack"
        await ws.disconnect()

    run(scenario)
    order.refresh_from_db()
    assert AuditEvent.objects.count() == events_before
    assert Driver.objects.get(pk=driver.pk).availability == Driver.Availability.AVAILABLE
    assert Driver.objects.get(pk=other.pk).availability == Driver.Availability.AVAILABLE


def test_someone_elses_offer_is_not_found_on_the_socket(channel):
    owner = DriverFactory(v2_connected_at="2026-01-01T00:00:00Z")
    order = receive_order(channel)
    offer = Offer.objects.get(order=order)
    stranger_token = token_for(DriverFactory())

    async def scenario():
        ws = await connect(stranger_token)
        frame = await send(ws, {"type": "accept", "id": 7, "offer_id": offer.pk})
        assert (frame["type"], frame["code"], frame["id"]) == ("error", "not_found", 7)
        await ws.disconnect()

    run(scenario)
    offer.refresh_from_db()
    assert offer.state == Offer.State.PENDING and offer.driver_id == owner.pk


def test_availability_over_the_socket(channel):
    driver = DriverFactory()
    token = token_for(driver)

    async def scenario():
        ws = await connect(token)
        brk = await send(ws, {"type": "availability", "id": 1, "state": "break", "minutes": 15})
        assert brk["availability"] == "on_break" and brk["break_ends_at"]
        loc = await send(ws, {"type": "location", "id": 2, "lat": 52.52, "lon": 13.4})
        assert loc == {"type": "ack", "id": 2}  # on a break, still located
        end = await send(ws, {"type": "availability", "id": 3, "state": "end_break"})
        assert end["availability"] == "available"
        off = await send(ws, {"type": "availability", "id": 4, "state": "offline"})
        assert off["availability"] == "offline"
        refused = await send(ws, {"type": "location", "id": 5, "lat": 1.0, "lon": 1.0})
        assert (refused["type"], refused["id"], refused["code"]) == ("error", 5, "driver_offline")  # offline: not located
        await ws.disconnect()

    run(scenario)
    kinds = list(AuditEvent.objects.filter(driver_id=driver.pk).order_by("id").values_list("kind", flat=True))
    assert kinds == ["driver.break_started", "driver.break_ended", "driver.offline"]
    driver.refresh_from_db()
    assert (driver.last_lat, driver.last_lon) == (52.52, 13.4)
