"""Hostile webhook bodies, property-based: whatever a signed body holds, the answer is a 2xx or
a 4xx in the {code, message, detail} shape, never a 500, and a refused body changes nothing."""

import copy
import json
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from dispatch.models import Order
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import post_webhook, ready_event
from vendure import sample_payloads
from vendure.models import WebhookEvent

pytestmark = pytest.mark.django_db


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in the valid body a value can be put: each key and list item, nested ones too."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*prefix, index))
            found.extend(_paths(child, (*prefix, index)))
    return found


TEMPLATE = ready_event()
TEMPLATE["order"]["customFields"] = {"promisedDeliveryAt": "2026-05-01T10:00:00Z"}
PATHS = _paths(TEMPLATE)


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"k": [value]}
    return value


BAD_MOMENTS = [
    "2026-13-01T10:00:00Z",
    "2026-02-30T10:00:00Z",
    "2026-05-01T24:60:00Z",
    "2026-05-01T10:00:00+25:00",
    "2026-05-01T10:00:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "1970-01-01T00:00:00Z",
    "2026-05-01",
    "",
]
HUGE_NUMBERS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, -1, 1e308, -0.0, 1e-320]
HOSTILE_STRINGS = ["\x00", "a\x00b", "\ud800", "x\udfffy", "x" * 5000, "<script>alert(1)</script>", "'; DROP TABLE x;--", "\u202e", " "]

hostile_values = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from(HUGE_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc", "Lo", "So"]), max_size=20),
    st.sampled_from(HOSTILE_STRINGS),
    st.sampled_from(BAD_MOMENTS),
    st.builds(_nested, st.integers(min_value=1, max_value=300)),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.sampled_from(["\x00", "\ud800", "", "k", "x" * 300]), st.sampled_from([None, "v", "\x00", float("nan")]), max_size=3),
)


def _at(path: tuple) -> Any:
    value: Any = TEMPLATE
    for key in path:
        value = value[key]
    return value


def _hostile_like(path: tuple) -> st.SearchStrategy[Any]:
    """Values aimed at what the field is: huge numbers for money, bad moments for dates..."""
    current = _at(path)
    if isinstance(current, bool) or current is None:
        return hostile_values
    if isinstance(current, int):
        powers = st.integers(min_value=31, max_value=300).map(lambda exponent: 2**exponent)
        return st.one_of(st.sampled_from(HUGE_NUMBERS), powers, powers.map(lambda n: -n), st.floats(allow_nan=True, allow_infinity=True))
    if isinstance(current, float):
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(HUGE_NUMBERS))
    if isinstance(current, str) and str(path[-1]).endswith("At"):
        return st.sampled_from(BAD_MOMENTS)
    if isinstance(current, str):
        return st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc"]), min_size=1, max_size=5))
    return hostile_values


def _mutations(path: tuple) -> st.SearchStrategy[tuple]:
    return st.tuples(
        st.just(path),
        st.sampled_from(["replace", "replace", "replace", "delete"]),
        st.one_of(_hostile_like(path), _hostile_like(path), hostile_values),
        st.sampled_from(["order.ready_for_delivery"] * 4 + ["order.cancelled"]),
    )


def _mutated(path: tuple, how: str, value: Any, event_type: str) -> dict[str, Any]:
    event = ready_event()
    event["order"]["customFields"] = dict(TEMPLATE["order"]["customFields"])
    if event_type == "order.cancelled":
        event = sample_payloads.event("order.cancelled", sample_payloads.cancelled_order(event["order"]))
    event = copy.deepcopy(event)
    target: Any = event
    for key in path[:-1]:
        try:
            target = target[key]
        except (KeyError, IndexError, TypeError):
            return event  # the cancelled shape lacks that part: the valid body is sent as is
    if how == "delete":
        if isinstance(target, dict):
            target.pop(path[-1], None)
    elif isinstance(target, dict) or (isinstance(target, list) and isinstance(path[-1], int) and path[-1] < len(target)):
        target[path[-1]] = value
    return event


def _footprint() -> tuple[int, int, int]:
    return Order.objects.count(), WebhookEvent.objects.count(), AuditEvent.objects.count()


@pytest.fixture
def channel():
    ZoneFactory()
    DriverFactory(capacity=50)
    return ShopChannelFactory()


# Every place in the body gets its own run, so none is left to chance.
@pytest.mark.parametrize("path", PATHS, ids=lambda path: ".".join(map(str, path)))
@given(data=st.data())
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_hostile_signed_body_gets_2xx_or_a_clean_4xx_and_a_refusal_changes_nothing(channel, path, data):
    mutation = data.draw(_mutations(path))
    event = _mutated(*mutation)
    try:
        raw = json.dumps(event, allow_nan=True).encode()
    except RecursionError:
        return  # deeper than the encoder goes: the server's own limit is tested elsewhere
    before = _footprint()
    response = post_webhook(Client(raise_request_exception=False), channel, raw)
    assert response.status_code < 500, (mutation, response.content[:500])
    if response.status_code >= 400:
        body = json.loads(response.content)
        assert set(body) == {"code", "message", "detail"}, body
        assert isinstance(body["code"], str) and isinstance(body["message"], str) and isinstance(body["detail"], dict)
        assert _footprint() == before, mutation
