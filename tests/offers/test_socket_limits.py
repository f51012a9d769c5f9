"""Bounds on what one driver socket can make the service spend: frames per second, a flood,
and the size of a frame (issue 10, item 9: there was no rate limit per socket)."""

import asyncio
import json
import time

import pytest

from dispatch.models import Driver
from offers.frame_budget import FrameBudget
from tests.factories import DriverFactory, ZoneFactory
from tests.offers.test_consumer import connect, receive, run, send, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("v2_offers_on", "v2_availability_on")]


@pytest.fixture
def driver():
    ZoneFactory()
    return DriverFactory()


def test_frames_over_the_budget_are_refused_with_retry_after_and_change_nothing(driver, settings):
    # given a budget of 5 frames in a burst, refilled slowly
    settings.DISPATCH_SOCKET_FRAME_BURST = 5
    settings.DISPATCH_SOCKET_FRAMES_PER_S = 0.01  # no refill within the test
    key = token_for(driver)

    async def scenario():
        ws = await connect(key, wait=False)
        await asyncio.sleep(0.3)  # the connect's own work is done
        # when the app sends 8 positions at once
        for n in range(8):
            await ws.send_to(text_data=json.dumps({"type": "location", "id": n, "lat": 50 + n, "lon": 13}))
        answers = [await receive(ws) for _ in range(8)]
        await ws.disconnect()
        return answers

    answers = run(scenario)
    # then the first 5 are acknowledged and the other 3 refused, each telling when to retry
    assert [a["type"] for a in answers] == ["ack"] * 5 + ["error"] * 3
    assert all(a["code"] == "rate_limited" and a["detail"]["retry_after"] > 0 for a in answers[5:])
    assert [a["id"] for a in answers[5:]] == [5, 6, 7]
    # and the refused frames did nothing: the last position stored is the fifth
    assert Driver.objects.get(pk=driver.pk).last_lat == 54


def test_a_sustained_flood_closes_the_socket_and_another_driver_is_not_slowed(driver, settings):
    # given a small budget, and a second driver on their own socket
    settings.DISPATCH_SOCKET_FRAME_BURST = 3
    settings.DISPATCH_SOCKET_FRAMES_PER_S = 0.01
    settings.DISPATCH_SOCKET_FLOOD_CLOSE_AFTER = 20
    key, other_key = token_for(driver), token_for(DriverFactory())

    async def scenario():
        flooder = await connect(key, wait=False)
        other = await connect(other_key)
        # when the first keeps sending after being told to slow down
        for n in range(40):
            await flooder.send_to(text_data=json.dumps({"type": "heartbeat", "id": n}))
        started = time.monotonic()
        other_answer = await send(other, {"type": "heartbeat", "id": "me"})
        other_took_s = time.monotonic() - started
        outputs = []
        while (output := await flooder.receive_output(timeout=3))["type"] != "websocket.close":
            outputs.append(json.loads(output["text"]))
        await other.disconnect()
        return outputs, output, other_answer, other_took_s

    outputs, close, other_answer, other_took_s = run(scenario)
    # then the flooder is refused, then closed with 4429 after the set number of refusals
    assert close == {"type": "websocket.close", "code": 4429}
    refused = [o for o in outputs if o.get("code") == "rate_limited"]
    assert len(refused) == 21 and len(outputs) == 24  # 3 acks, 20 refusals, the closing notice
    # and the other driver's frame was answered at once
    assert other_answer["type"] == "ack" and other_took_s < 1


def test_a_frame_over_the_size_limit_is_refused_without_being_read(driver):
    key = token_for(driver)

    async def scenario():
        ws = await connect(key)
        answer = await send(ws, {"type": "decline", "id": "big", "offer_id": 1, "reason": "x" * 17_000})
        alive = await send(ws, {"type": "heartbeat", "id": "alive"})
        await ws.disconnect()
        return answer, alive

    answer, alive = run(scenario)
    assert (answer["code"], answer["id"]) == ("invalid_frame", None)
    assert alive["type"] == "ack"


def test_the_budget_refills_at_its_rate():
    now = [0.0]
    budget = FrameBudget(rate_per_s=2, burst=2, clock=lambda: now[0])
    assert [budget.take() for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] = 0.5
    assert budget.take() == 0.0 and budget.refused_in_a_row == 0
    assert budget.take() == pytest.approx(0.5)
