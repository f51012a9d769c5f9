"""The v1 driver API under hostile input schemathesis cannot send: bodies carrying lone
surrogates (as JSON escapes), NaN and Infinity (Python's json reads them), integers too long
to convert, impossible or out-of-range moments, deep nesting, huge strings, and path ids past
a bigint. Every answer is a 2xx or a {code, message, detail} 4xx, and a refusal changes nothing."""

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from dispatch.models import Driver, Order
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = pytest.mark.django_db

# Each v1 operation that reads a body, with the fields it reads.
BODIES = {
    "delivered": ("/api/v1/orders/{id}/delivered/", ["note", "photo_ref"]),
    "failed": ("/api/v1/orders/{id}/failed/", ["reason"]),
    "position": ("/api/v1/me/position/", ["lat", "lon", "recorded_at"]),
}

HOSTILE_JSON_VALUES = [
    '"\\ud800"',
    '"a\\udfffb"',
    '"\\u0000"',
    '"x\\u0000y"',
    "NaN",
    "Infinity",
    "-Infinity",
    "1" * 5000,
    "1e400",
    "-1e400",
    str(2**63),
    str(10**30),
    "true",
    "null",
    "[]",
    "{}",
    "[" * 200 + "]" * 200,
    json.dumps("x" * 100_000),
    '"2026-13-01T10:00:00Z"',
    '"2026-02-30T10:00:00Z"',
    '"2026-05-01T24:60:00Z"',
    '"2026-05-01T10:00:00+25:00"',
    '"0001-01-01T00:00:00+14:00"',
    '"9999-12-31T23:59:59-14:00"',
    '"\\u202e\\u0000"',
]


def _raw_body(fields: list[str], target: str, hostile: str, base: dict[str, Any]) -> bytes:
    parts = [f"{json.dumps(name)}: {hostile if name == target else json.dumps(base[name])}" for name in fields if name == target or name in base]
    return ("{" + ", ".join(parts) + "}").encode()


@pytest.fixture
def driver_client(client):
    ZoneFactory()
    driver = DriverFactory(capacity=3)
    order = receive_order(ShopChannelFactory())
    client.raise_request_exception = False
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=driver.user).key}"
    return client, driver, order


def _footprint() -> tuple:
    return (
        list(Order.objects.order_by("pk").values_list("status", "driver_id", "proof_note", "failure_reason")),
        list(Driver.objects.order_by("pk").values_list("availability", "last_lat", "last_lon", "last_position_at", "active_order_count")),
        AuditEvent.objects.count(),
    )


BASES = {"delivered": {"note": "left at the door", "photo_ref": "p1"}, "failed": {"reason": "nobody home"}, "position": {"lat": 52.5, "lon": 13.4}}


@pytest.mark.parametrize("operation", BODIES)
@given(data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_hostile_body_gets_a_clean_answer_and_a_refusal_changes_nothing(driver_client, operation, data):
    client, driver, order = driver_client
    path, fields = BODIES[operation]
    target = data.draw(st.sampled_from(fields))
    hostile = data.draw(st.sampled_from(HOSTILE_JSON_VALUES))
    raw = _raw_body(fields, target, hostile, BASES[operation])
    before = _footprint()
    response = client.post(path.format(id=order.pk), data=raw, content_type="application/json")
    assert response.status_code < 500, (operation, target, hostile[:40], response.content[:300])
    if response.status_code >= 400:
        body = json.loads(response.content)
        assert set(body) == {"code", "message", "detail"}, body
        assert _footprint() == before


@pytest.mark.parametrize("order_id", [0, 2**31, 2**63 - 1, 2**63, 10**30, 10**400])
@pytest.mark.parametrize("suffix, method", [("", "get"), ("picked-up/", "post"), ("delivered/", "post"), ("failed/", "post")])
def test_an_order_id_past_a_bigint_is_a_404(driver_client, order_id, suffix, method):
    client, driver, order = driver_client
    response = getattr(client, method)(
        f"/api/v1/orders/{order_id}/{suffix}", data={"reason": "x"} if suffix == "failed/" else {}, content_type="application/json"
    )
    assert response.status_code == 404, response.content[:300]
    assert json.loads(response.content)["code"] == "not_found"
