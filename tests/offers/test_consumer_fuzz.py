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


def frames_for(offer_id):
    """Frames of each known type whose fields are mostly plausible and sometimes hostile, so
    that a hostile value reaches the code behind the checks that come before it."""
    # Branches of one_of are drawn about evenly: the real offer and the hostile strings are
    # repeated to come up often enough to get past the checks in front of them.
    offer = st.one_of(st.just(offer_id), st.just(offer_id), st.just(offer_id), VALUES)
    text = st.one_of(HOSTILE_TEXT, HOSTILE_TEXT, HOSTILE_TEXT, st.text(max_size=40), VALUES)
    by_type = {
        "accept": {"offer_id": offer},
        "decline": {"offer_id": offer, "reason": text},
        "heartbeat": {},
        "location": {
            "lat": st.one_of(st.floats(min_value=-90, max_value=90), VALUES),
            "lon": st.one_of(st.floats(min_value=-180, max_value=180), VALUES),
            "recorded_at": st.one_of(TIMES, HOSTILE_TEXT, HOSTILE_TEXT, VALUES),
        },
        "availability": {
            "state": st.one_of(st.sampled_from(["available", "break", "end_break", "offline"]), VALUES),
            "minutes": st.one_of(st.integers(min_value=-5, max_value=500), VALUES),
        },
        "auth": {"token": text, "app_version": text},
    }
    ids = st.one_of(st.integers(min_value=0, max_value=10**6), st.text(min_size=1, max_size=8))
    # Every field of the type is there (hypothesis rarely draws optional keys, and a missing
    # field is refused before the others are read); frames without them are tested elsewhere.
    known = [st.fixed_dictionaries({"type": st.just(kind), "id": ids, **fields}) for kind, fields in by_type.items()]
    unknown = st.fixed_dictionaries({"type": VALUES, "id": ids}, optional={name: VALUES for name in ("offer_id", "reason", "state")})
    return st.one_of(*known, unknown)


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
    ShopChannelFactory()
    driver = v2_driver(capacity=50)
    return driver, token_for(driver)


def a_pending_offer_for(driver):
    """Each example starts with the driver available and an offer to answer."""
    Driver.objects.filter(pk=driver.pk).update(availability=Driver.Availability.AVAILABLE, break_ends_at=None)
    pending = Offer.objects.filter(driver=driver, state=Offer.State.PENDING).first()
    return pending.pk if pending else Offer.objects.get(order=receive_order(ShopChannelFactory()), driver=driver).pk


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_hostile_frame_gets_an_ack_or_an_error_and_a_refused_one_changes_nothing(driver, data):
    driver, key = driver
    frames = data.draw(st.lists(frames_for(a_pending_offer_for(driver)), min_size=1, max_size=6))

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
