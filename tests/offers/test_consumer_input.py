"""Hostile input on the driver socket: every field refused as the v2 REST API refuses it,
with an error frame, and the connection stays open (issue 10, item 9)."""

import json

import pytest
from channels.testing import WebsocketCommunicator

from audit.models import AuditEvent
from dispatch.asgi import application
from dispatch.models import Driver
from offers.models import Offer
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from tests.offers.test_consumer import connect, receive, run, send, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("v2_offers_on", "v2_availability_on")]

IMPOSSIBLE_TIMES = ["2026-02-30T10:00:00Z", "2026-13-01T10:00:00Z", "2026-01-01T10:00:00+25:00", "2026-01-01T24:60:00Z", "2026-01-01T10:00:00"]
HOSTILE_REASONS = ["\u0000", "late\u0000", "\ud800", "x\udfffy", "x" * 256]


@pytest.fixture
def offered(v2_driver):
    ZoneFactory()
    driver = v2_driver()
    order = receive_order(ShopChannelFactory())
    return driver, Offer.objects.get(order=order, driver=driver)


def test_impossible_recorded_at_is_invalid_input_and_changes_nothing(offered):
    # given a connected driver
    driver, _ = offered
    token = token_for(driver)

    async def scenario():
        ws = await connect(token)
        # when the phone sends a position at a time that does not exist
        answers = [await send(ws, {"type": "location", "id": n, "lat": 52.5, "lon": 13.4, "recorded_at": t}) for n, t in enumerate(IMPOSSIBLE_TIMES)]
        alive = await send(ws, {"type": "heartbeat", "id": "alive"})
        await ws.disconnect()
        return answers, alive

    answers, alive = run(scenario)
    # then each is refused as invalid input naming the field, and the socket stays open
    assert [(a["type"], a["code"], a["detail"]["field"]) for a in answers] == [("error", "invalid_input", "recorded_at")] * len(IMPOSSIBLE_TIMES)
    assert alive["type"] == "ack"
    assert Driver.objects.get(pk=driver.pk).last_lat is None


def test_hostile_decline_reasons_are_invalid_input_on_the_socket_as_over_rest(offered):
    # given a driver with a pending offer
    driver, offer = offered
    from rest_framework.test import APIClient

    client = APIClient()
    token = token_for(driver)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    events = AuditEvent.objects.count()

    async def scenario():
        ws = await connect(token)
        answers = [await send(ws, {"type": "decline", "id": n, "offer_id": offer.pk, "reason": r}) for n, r in enumerate(HOSTILE_REASONS)]
        await ws.disconnect()
        return answers

    # when the reason holds NUL, a lone surrogate or is too long
    answers = run(scenario)
    # then the socket refuses each as the REST API does, and nothing changed
    assert [(a["type"], a["code"], a["detail"]["field"]) for a in answers] == [("error", "invalid_input", "reason")] * len(HOSTILE_REASONS)
    for reason in HOSTILE_REASONS:
        assert client.post(f"/api/v2/offers/{offer.pk}/decline/", json.dumps({"reason": reason}), content_type="application/json").status_code == 400
    assert Offer.objects.get(pk=offer.pk).state == Offer.State.PENDING
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("app_version", ["2.3\u0000", "\ud800", "9" * 33, 7])
def test_a_hostile_app_version_in_the_auth_frame_gets_an_error_frame_not_a_dropped_connection(app_version):
    # given a driver and a socket not yet authenticated
    driver = DriverFactory()
    token = token_for(driver)

    async def scenario():
        ws = WebsocketCommunicator(application, "/ws/driver/")
        assert (await ws.connect())[0]
        # when the auth frame carries a hostile app version
        refused = await send(ws, {"type": "auth", "id": "a", "token": token, "app_version": app_version})
        # then it is an error frame, and the socket is still open for a good auth frame
        accepted = await send(ws, {"type": "auth", "id": "b", "token": token, "app_version": "2.3.0"})
        await ws.disconnect()
        return refused, accepted

    refused, accepted = run(scenario)
    assert (refused["type"], refused["code"], refused["id"], refused["detail"]["field"]) == ("error", "invalid_input", "a", "app_version")
    assert accepted == {"type": "ack", "id": "b", "driver_id": driver.pk}


def test_a_hostile_app_version_header_gets_an_error_frame_and_a_chance_to_authenticate(settings):
    # given a socket opened with a valid token but a NUL in its X-App-Version header
    settings.DISPATCH_SOCKET_AUTH_TIMEOUT_S = 5
    driver = DriverFactory()
    token = token_for(driver)

    async def scenario():
        headers = [(b"x-app-version", b"2.3\x00"), (b"authorization", f"Token {token}".encode())]
        ws = WebsocketCommunicator(application, "/ws/driver/", headers=headers)
        assert (await ws.connect())[0]
        refused = await receive(ws)
        accepted = await send(ws, {"type": "auth", "id": "b", "token": token, "app_version": "2.3.0"})
        await ws.disconnect()
        return refused, accepted

    refused, accepted = run(scenario)
    assert (refused["type"], refused["code"], refused["detail"]["field"]) == ("error", "invalid_input", "app_version")
    assert accepted == {"type": "ack", "id": "b", "driver_id": driver.pk}
    assert Driver.objects.get(pk=driver.pk).app_version == "2.3.0"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "location", "lat": 1e308, "lon": 13.4},
        {"type": "location", "lat": 52.5, "lon": -181},
        {"type": "location", "lat": True, "lon": 13.4},
        {"type": "accept", "offer_id": 2**63},
        {"type": "accept", "offer_id": -1},
        {"type": "decline", "offer_id": 1.5},
        {"type": "availability", "state": "break", "minutes": 2**40},
        {"type": "availability", "state": "break", "minutes": "15"},
        {"type": "availability", "state": ["available"]},
        {"type": "auth", "token": "\u0000"},
    ],
)
def test_out_of_range_and_wrongly_typed_fields_are_invalid_input(offered, frame):
    driver, offer = offered
    token = token_for(driver)
    events = AuditEvent.objects.count()

    async def scenario():
        ws = await connect(token)
        answer = await send(ws, {**frame, "id": "x"})
        alive = await send(ws, {"type": "heartbeat", "id": "alive"})
        await ws.disconnect()
        return answer, alive

    answer, alive = run(scenario)
    if frame["type"] == "auth":  # already authenticated: a second auth frame is acknowledged, not re-read
        assert answer["type"] == "ack"
    else:
        assert (answer["type"], answer["code"]) == ("error", "invalid_input"), answer
    assert alive["type"] == "ack"
    assert Offer.objects.get(pk=offer.pk).state == Offer.State.PENDING
    assert AuditEvent.objects.count() == events


def test_nan_and_infinity_literals_are_refused(offered):
    driver, _ = offered
    token = token_for(driver)

    async def scenario():
        ws = await connect(token)
        await ws.send_to(text_data='{"type": "location", "id": "n", "lat": NaN, "lon": Infinity}')
        answer = await receive(ws)
        await ws.disconnect()
        return answer

    answer = run(scenario)
    assert answer["type"] == "error" and answer["code"] in ("invalid_json", "invalid_input")
    json.dumps(answer, allow_nan=False)  # the answer itself is strict JSON
