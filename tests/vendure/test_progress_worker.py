"""Progress reports through a real Celery worker on the real Redis broker."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AuditEvent
from dispatch.celery import app
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.fake_vendure import FakeVendure
from tests.helpers import receive_order

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker():
    app.conf.task_always_eager = False
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield
    app.conf.task_always_eager = True


def wait_for(condition, timeout_s=20):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_the_correlation_id_of_the_drivers_request_follows_into_the_report_task(worker, outbound_to_loopback):
    shop = FakeVendure()
    try:
        ZoneFactory()
        channel = ShopChannelFactory(admin_api_url=shop.url, admin_api_token=shop.token)
        driver = DriverFactory()
        order = receive_order(channel)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=driver.user).key}")
        response = client.post(f"/api/v1/orders/{order.pk}/picked-up/", HTTP_X_REQUEST_ID="pickup-trace-7")
        assert response.status_code == 200 and response["X-Request-ID"] == "pickup-trace-7"
        assert wait_for(lambda: AuditEvent.objects.filter(kind="vendure.shipped_reported").exists())
        assert shop.fulfillments["1"]["state"] == "Shipped"
        story = AuditEvent.objects.filter(order_id=order.pk, kind__in=["order.picked_up", "vendure.fulfillment_created", "vendure.shipped_reported"])
        assert set(story.values_list("correlation_id", flat=True)) == {"pickup-trace-7"}
    finally:
        shop.close()
