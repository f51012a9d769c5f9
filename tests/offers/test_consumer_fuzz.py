"""Hostile frames of every known type through the real consumer (hypothesis): each frame gets
exactly one ack or error frame, never internal_error; the socket stays open; and a refused
frame changes nothing."""

import json

import pytest
from channels.db import database_sync_to_async
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from dispatch.models import Driver, Order
from offers.models import Offer
from tests.factories import ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from tests.offers.test_consumer import connect, receive, run, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("v2_offers_on", "v2_availability_on")]

HOSTILE_TEXT = st.sampled_from(
    ["", "\x00", "a\x00b", "\ud800", "x\udfffy", "2026-02-30T10:00:00Z", "2026-13-01T10:00:00Z", "2026-01-01T10:00:00+25:00", "2026-01-01T24:60:00Z", "9" * 400]
)
TIMES = st.datetimes().map(lambda t: t.isoformat() + "Z")
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    HOSTILE_TEXT,
    TIMES,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
FIELDS = ["offer_id", "reason", "lat", "lon", "recorded_at", "state", "minutes", "token", "app_version"]
FRAMES = st.fixed_dictionaries(
    {
        "type": st.one_of(st.sampled_from(["accept", "decline", "heartbeat", "location", "availability", "auth"]), VALUES),
        "id": st.one_of(st.integers(min_value=0, max_value=10**6), st.text(min_size=1, max_size=8)),
    },
    optional={
        **{name: VALUES for name in FIELDS},
        "state": st.one_of(st.sampled_from(["available", "break", "end_break", "offline"]), VALUES),
        "lat": st.one_of(st.floats(min_value=-90, max_value=90), VALUES),
        "lon": st.one_of(st.floats(min_value=-180, max_value=180), VALUES),
    },
)


def state_snapshot(driver_id):
    return (
        AuditEvent.objects.count(),
        Driver.objects.filter(pk=driver_id).values_list("availability", "break_ends_at", "last_lat", "last_lon", "last_position_at", "app_version").get(),
        sorted(Offer.objects.values_list("pk", "state")),
        sorted(Order.objects.values_list("pk", "status", "driver_id")),
    )


@pytest.fixture
def driver(v2_driver, settings):
    settings.DISPATCH_SOCKET_FRAME_BURST = 10_000  # the budget has its own tests; here every frame is read
    ZoneFactory()
    driver = v2_driver()
    receive_order(ShopChannelFactory())  # a pending offer to answer
    return driver, token_for(driver)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(frames=st.lists(FRAMES, min_size=1, max_size=6))
def test_every_hostile_frame_gets_an_ack_or_an_error_and_a_refused_one_changes_nothing(driver, frames):
    driver, key = driver

    async def scenario():
        ws = await connect(key)
        for frame in frames:
            before = await database_sync_to_async(state_snapshot)(driver.pk)
            await ws.send_to(text_data=json.dumps(frame))
            answer = await receive(ws)
            while answer["type"] not in ("ack", "error"):  # offer and order frames pushed meanwhile
                answer = await receive(ws)
            assert answer["id"] == frame["id"], (frame, answer)
            assert answer.get("code") != "internal_error", (frame, answer)
            if answer["type"] == "error":
                assert await database_sync_to_async(state_snapshot)(driver.pk) == before, (frame, answer)
        alive = None
        await ws.send_to(text_data=json.dumps({"type": "heartbeat", "id": "alive"}))
        while alive is None or alive["type"] not in ("ack", "error"):
            alive = await receive(ws)
        assert alive == {"type": "ack", "id": "alive"}
        await ws.disconnect()

    run(scenario)
