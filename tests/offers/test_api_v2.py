import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AuditEvent
from dispatch.models import Driver, Order
from offers.models import Offer
from tests.factories import ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("v2_offers_on", "v2_availability_on")]


def client_for(driver):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=driver.user)[0].key}")
    return client


@pytest.fixture
def offered(v2_driver):
    ZoneFactory()
    driver = v2_driver()
    order = receive_order(ShopChannelFactory())
    return driver, order, Offer.objects.get(order=order), client_for(driver)


def test_a_driver_without_a_socket_lists_and_accepts_the_offer_by_rest(offered):
    driver, order, offer, client = offered
    [listed] = client.get("/api/v2/offers/").json()
    assert listed["id"] == offer.pk and listed["order"]["code"] == order.code and listed["state"] == "pending"
    response = client.post(f"/api/v2/offers/{offer.pk}/accept/")
    assert response.status_code == 200 and response.json() == {"offer_id": offer.pk, "result": "accepted", "order_id": order.pk}
    assert client.post(f"/api/v2/offers/{offer.pk}/accept/").json()["result"] == "accepted"  # same answer again
    assert Order.objects.get(pk=order.pk).driver_id == driver.pk
    assert client.get("/api/v2/offers/").json() == []


def test_decline_by_rest_and_bad_input(offered):
    driver, order, offer, client = offered
    assert client.post(f"/api/v2/offers/{offer.pk}/decline/", {"reason": 12}, format="json").status_code == 400
    assert Offer.objects.get(pk=offer.pk).state == Offer.State.PENDING
    response = client.post(f"/api/v2/offers/{offer.pk}/decline/", {"reason": "flat tyre"}, format="json")
    assert response.status_code == 200 and response.json()["result"] == "declined"
    refused = client.post(f"/api/v2/offers/{offer.pk}/accept/")
    assert refused.status_code == 409 and refused.json()["code"] == "offer_already_answered"


def test_someone_elses_offer_is_404_by_rest(offered, v2_driver):
    _, _, offer, _ = offered
    stranger = client_for(v2_driver())
    assert stranger.post(f"/api/v2/offers/{offer.pk}/accept/").status_code == 404
    assert stranger.post(f"/api/v2/offers/{offer.pk}/decline/", {}, format="json").status_code == 404
    assert Offer.objects.get(pk=offer.pk).state == Offer.State.PENDING


def test_heartbeat_and_availability_by_rest(offered, django_capture_on_commit_callbacks):
    driver, _, offer, client = offered
    before = timezone.now()
    assert client.post("/api/v2/heartbeat/").status_code == 204
    assert Driver.objects.get(pk=driver.pk).last_heartbeat_at >= before
    assert client.post("/api/v2/availability/", {"state": "break"}, format="json").status_code == 400
    assert client.post("/api/v2/availability/", {"state": "nap", "minutes": 5}, format="json").status_code == 400
    assert client.post("/api/v2/availability/", {"state": "break", "minutes": "5"}, format="json").status_code == 400
    assert Driver.objects.get(pk=driver.pk).availability == Driver.Availability.AVAILABLE
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v2/availability/", {"state": "break", "minutes": 10}, format="json")
    assert response.status_code == 200 and response.json()["availability"] == "on_break"
    # the break took the driver out of work: their pending offer went back
    offer.refresh_from_db()
    assert offer.state == Offer.State.WITHDRAWN
    assert AuditEvent.objects.filter(kind="driver.break_started", driver_id=driver.pk).count() == 1
    assert client.post("/api/v2/availability/", {"state": "end_break"}, format="json").json()["availability"] == "available"


def test_the_v2_schema_is_served_apart_from_v1(client):
    import yaml

    v2 = yaml.safe_load(client.get("/api/schema/v2/").content)
    v1 = yaml.safe_load(client.get("/api/schema/").content)
    assert all(p.startswith("/api/v2/") for p in v2["paths"]) and "/api/v2/offers/" in v2["paths"]
    assert all(p.startswith("/api/v1/") for p in v1["paths"])
