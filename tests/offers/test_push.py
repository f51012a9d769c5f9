import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from dispatch.models import Driver
from offers.models import Offer
from offers.push import push_if_not_connected
from tests.factories import ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from vendure.signing import verify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("v2_offers_on")]


@pytest.fixture
def gateway(outbound_to_loopback):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, dict(self.headers)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/push", received
    server.shutdown()


@pytest.fixture
def offer(v2_driver):
    ZoneFactory()
    v2_driver()
    return Offer.objects.select_related("driver", "order").get(order=receive_order(ShopChannelFactory()))


def test_a_driver_without_a_socket_gets_a_signed_webhook_push(offer, gateway, settings):
    url, received = gateway
    settings.DISPATCH_PUSH_BACKEND = "offers.push.WebhookBackend"
    settings.DISPATCH_PUSH_WEBHOOK_URL = url
    settings.DISPATCH_PUSH_WEBHOOK_SECRET = "push-secret-0123456789"
    push_if_not_connected(offer)
    [(body, headers)] = received
    verify("push-secret-0123456789", headers["X-Dispatch-Signature"], body, tolerance_s=60)
    payload = json.loads(body)
    assert payload["driver_id"] == offer.driver_id and payload["data"]["offer_id"] == offer.pk


def test_a_connected_driver_is_not_pushed(offer, gateway, settings):
    url, received = gateway
    settings.DISPATCH_PUSH_BACKEND = "offers.push.WebhookBackend"
    settings.DISPATCH_PUSH_WEBHOOK_URL = url
    Driver.objects.filter(pk=offer.driver_id).update(live_sockets=1, socket_seen_at=timezone.now())
    offer.driver.refresh_from_db()
    push_if_not_connected(offer)
    assert received == []


def test_a_stale_socket_count_does_not_count_as_connected(offer, gateway, settings):
    url, received = gateway
    settings.DISPATCH_PUSH_BACKEND = "offers.push.WebhookBackend"
    settings.DISPATCH_PUSH_WEBHOOK_URL = url
    Driver.objects.filter(pk=offer.driver_id).update(live_sockets=1, socket_seen_at=timezone.now() - timedelta(minutes=10))
    offer.driver.refresh_from_db()
    push_if_not_connected(offer)
    assert len(received) == 1


def test_a_failing_push_never_fails_dispatch(offer, settings, caplog):
    settings.DISPATCH_PUSH_BACKEND = "offers.push.WebhookBackend"
    settings.DISPATCH_PUSH_WEBHOOK_URL = "http://127.0.0.1:9/unreachable"
    push_if_not_connected(offer)  # does not raise
    assert f"push to driver {offer.driver_id} failed" in caplog.text


def test_the_log_backend_is_the_default(offer, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="offers.push"):
        push_if_not_connected(offer)
    assert f"push to driver {offer.driver_id}" in caplog.text
