"""Progress reports through a real Celery worker on the real Redis broker."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AuditEvent
from dispatch.celery import app
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.fake_vendure import FakeVendure
from tests.helpers import receive_order
from usecases import orders as order_usecases
from vendure.models import FulfillmentReport, FulfillmentStep

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker():
    app.conf.task_always_eager = False
    # Nothing left over on this broker from earlier tests: a stale nudge for an order whose id
    # this test's order happens to reuse would report it under another correlation id.
    app.control.purge()
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


ROOT = Path(__file__).resolve().parents[2]


def worker_process(log_path):
    """A real `celery worker` process on the test database and the test's Redis broker."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DISPATCH_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",  # the fake shop
        "VENDURE_TIMEOUT_S": "1",  # a short call, so the claim's lease runs out in seconds
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "celery", "-A", "dispatch", "worker", "--pool", "solo", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_a_report_whose_worker_is_killed_mid_call_reaches_the_shop_exactly_once(outbound_to_loopback, tmp_path):
    app.conf.task_always_eager = False
    app.control.purge()  # nothing left over from other runs on this broker
    shop = FakeVendure()
    first = second = None
    try:
        # given an order picked up, and a worker that dies while the shop creates its fulfillment
        ZoneFactory()
        channel = ShopChannelFactory(admin_api_url=shop.url, admin_api_token=shop.token)
        driver = DriverFactory()
        order = receive_order(channel)
        shop.delay_add_s = 10
        first = worker_process(tmp_path / "worker-1.log")
        order_usecases.order_pick_up(order_id=order.pk, driver=driver)  # commits; the nudge goes to Redis
        assert shop.add_received.wait(60), (tmp_path / "worker-1.log").read_text()
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        # then the shop has the fulfillment but we never heard back: the step is still owed
        assert len(shop.fulfillments) == 1
        step = FulfillmentStep.objects.get(order=order)
        assert (step.state, step.attempts) == ("pending", 1)
        assert FulfillmentReport.objects.get(order=order).fulfillment_id == ""
        # when a new worker runs the sweep (as beat would, every 10 s) until the lease runs out
        second = worker_process(tmp_path / "worker-2.log")

        def reported():
            app.send_task("vendure.report_fulfillments_due")
            time.sleep(1)
            return FulfillmentStep.objects.filter(order=order, state="reported").exists()

        assert wait_for(reported, timeout_s=60), (tmp_path / "worker-2.log").read_text()
        # then the shop heard of the pickup exactly once: one fulfillment (adopted, not made
        # again), moved to Shipped once, and one record of each on our side
        assert len(shop.fulfillments) == 1 and shop.fulfillments["1"]["state"] == "Shipped"
        moves = [c for c in shop.mutations("transitionFulfillmentToState") if not c.get("failed")]
        assert [c["variables"]["state"] for c in moves] == ["Shipped"]
        assert FulfillmentReport.objects.get(order=order).fulfillment_id == "1"
        assert AuditEvent.objects.filter(order_id=order.pk, kind="vendure.fulfillment_created").count() == 1
        assert AuditEvent.objects.filter(order_id=order.pk, kind="vendure.shipped_reported").count() == 1
    finally:
        for process in (first, second):
            if process is not None:
                stop(process)
        shop.close()
        app.conf.task_always_eager = True
