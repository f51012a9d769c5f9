from pathlib import Path

import pytest
import yaml
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AuditEvent
from dispatch.models import Driver, Order
from tests.factories import DriverFactory, ShopChannelFactory, UserFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = pytest.mark.django_db
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "api" / "v1.yaml"


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def setup():
    ZoneFactory()
    channel = ShopChannelFactory()
    driver = DriverFactory(capacity=2)
    order = receive_order(channel)
    return driver, order, client_for(driver.user), channel


def test_the_driver_sees_their_current_orders(setup):
    driver, order, client, _ = setup
    response = client.get("/api/v1/orders/")
    assert response.status_code == 200
    [body] = response.json()
    assert body["id"] == order.pk and body["status"] == "assigned"
    assert body["pickup"]["lat"] == order.pickup_lat
    assert body["dropoff"]["address"].startswith("Invalidenstraße 1")


def test_orders_list_makes_a_fixed_number_of_queries(setup, django_assert_max_num_queries):
    driver, _, client, channel = setup
    receive_order(channel)
    with django_assert_max_num_queries(4):
        assert len(client.get("/api/v1/orders/").json()) == 2


def test_pickup_then_delivery_with_proof(setup):
    driver, order, client, _ = setup
    assert client.post(f"/api/v1/orders/{order.pk}/picked-up/").json()["status"] == "picked_up"
    response = client.post(f"/api/v1/orders/{order.pk}/delivered/", {"note": "At the door", "photo_ref": "s3://proofs/1.jpg"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "delivered"
    order.refresh_from_db()
    assert (order.proof_note, order.proof_photo_ref) == ("At the door", "s3://proofs/1.jpg")
    assert client.get("/api/v1/orders/").json() == []
    assert client.get(f"/api/v1/orders/{order.pk}/").json()["status"] == "delivered"


def test_failed_needs_a_reason(setup):
    _, order, client, _ = setup
    response = client.post(f"/api/v1/orders/{order.pk}/failed/", {}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["detail"]
    assert Order.objects.get(pk=order.pk).status == Order.Status.ASSIGNED
    response = client.post(f"/api/v1/orders/{order.pk}/failed/", {"reason": "customer not at home"}, format="json")
    assert response.status_code == 200 and response.json()["failure_reason"] == "customer not at home"


def test_a_wrong_transition_gets_409_with_the_reason(setup):
    _, order, client, _ = setup
    response = client.post(f"/api/v1/orders/{order.pk}/delivered/", {}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "illegal_transition" and body["detail"] == {"current": "assigned", "requested": "delivered"}
    assert Order.objects.get(pk=order.pk).status == Order.Status.ASSIGNED


def test_another_drivers_order_is_404_for_reads_and_writes(setup):
    _, order, _, _ = setup
    other = client_for(DriverFactory().user)
    events = AuditEvent.objects.count()
    assert other.get(f"/api/v1/orders/{order.pk}/").status_code == 404
    for action in ("picked-up", "delivered", "failed"):
        assert other.post(f"/api/v1/orders/{order.pk}/{action}/", {"reason": "x"}, format="json").status_code == 404
    assert Order.objects.get(pk=order.pk).status == Order.Status.ASSIGNED
    assert AuditEvent.objects.count() == events


def test_missing_or_wrong_token_is_401_and_a_non_driver_is_403(setup):
    _, order, _, _ = setup
    assert APIClient().get("/api/v1/orders/").status_code == 401
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert wrong.get("/api/v1/orders/").status_code == 401
    staff = client_for(UserFactory())
    response = staff.get("/api/v1/orders/")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_online_offline_and_position(setup):
    driver, _, client, _ = setup
    assert client.post("/api/v1/me/offline/").json()["availability"] == "offline"
    assert client.post("/api/v1/me/online/").json()["availability"] == "available"
    assert client.post("/api/v1/me/position/", {"lat": 52.52, "lon": 13.4}, format="json").status_code == 204
    me = client.get("/api/v1/me/").json()
    assert (me["last_lat"], me["last_lon"]) == (52.52, 13.4)
    assert list(AuditEvent.objects.filter(driver_id=driver.pk, kind__startswith="driver.").values_list("kind", flat=True).order_by("id")) == [
        "driver.offline",
        "driver.online",
    ]


@pytest.mark.parametrize("body", [{"lat": 91, "lon": 0}, {"lat": 0, "lon": 181}, {"lat": "north", "lon": 0}, {"lon": 13.4}, {}])
def test_bad_positions_get_400_and_change_nothing(setup, body):
    driver, _, client, _ = setup
    response = client.post("/api/v1/me/position/", body, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert Driver.objects.get(pk=driver.pk).last_position_at is None


def test_an_unknown_order_id_is_404(setup):
    _, _, client, _ = setup
    assert client.get("/api/v1/orders/999999/").status_code == 404


def test_the_served_v1_schema_matches_the_committed_one(client):
    # The v1 API is frozen for old driver apps: any change to it must be deliberate
    # (update docs/api/v1.yaml in the same commit, and only with additive changes).
    served = yaml.safe_load(client.get("/api/schema/").content)
    committed = yaml.safe_load(SCHEMA_FILE.read_text())
    assert served == committed


def test_a_deeply_nested_body_gets_400_not_500(setup):
    _, order, client, _ = setup
    response = client.post(f"/api/v1/orders/{order.pk}/failed/", data=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert Order.objects.get(pk=order.pk).status == Order.Status.ASSIGNED


def test_unknown_api_paths_get_the_api_error_shape_and_pages_get_a_page(client):
    api = client.get("/api/v1/orders/not-a-number/")
    assert api.status_code == 404 and api.json()["code"] == "not_found"
    page = client.get("/nowhere/")
    assert page.status_code == 404 and b"Not found" in page.content


def test_the_system_checks_pass():
    from django.core.management import call_command

    call_command("check", fail_level="WARNING")
