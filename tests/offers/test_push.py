import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from availability.models import DriverSocket
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
    DriverSocket.objects.create(driver_id=offer.driver_id, channel_name="specific.a!1", opened_at=timezone.now(), seen_at=timezone.now())
    push_if_not_connected(offer)
    assert received == []


def test_a_stale_socket_row_does_not_count_as_connected(offer, gateway, settings):
    url, received = gateway
    settings.DISPATCH_PUSH_BACKEND = "offers.push.WebhookBackend"
    settings.DISPATCH_PUSH_WEBHOOK_URL = url
    long_ago = timezone.now() - timedelta(minutes=10)  # its server died and stopped vouching for it
    DriverSocket.objects.create(driver_id=offer.driver_id, channel_name="specific.a!1", opened_at=long_ago, seen_at=long_ago)
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


def web_push_subscription(endpoint):
    """A browser's Web Push subscription (its own key pair and auth secret) for `endpoint`."""
    import base64
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": endpoint, "keys": {"p256dh": b64(public), "auth": b64(os.urandom(16))}}


@pytest.fixture
def web_push(settings):
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    # The VAPID key as pywebpush reads it from a string: base64 of its DER form.
    der = ec.generate_private_key(ec.SECP256R1()).private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    settings.DISPATCH_PUSH_BACKEND = "offers.push.WebPushBackend"
    settings.DISPATCH_WEBPUSH_VAPID_PRIVATE_KEY = base64.urlsafe_b64encode(der).decode()


def test_web_push_goes_to_the_subscription_endpoint_through_the_checked_path(offer, gateway, web_push):
    url, received = gateway
    Driver.objects.filter(pk=offer.driver_id).update(push_subscription=web_push_subscription(url))
    offer.driver.refresh_from_db()
    push_if_not_connected(offer)
    [(body, headers)] = received
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["content-encoding"] == "aes128gcm" and headers["authorization"].startswith("vapid ")
    assert body  # encrypted for the subscription's keys


def test_a_driver_cannot_make_web_push_call_an_internal_address(offer, web_push, caplog):
    # The endpoint comes from the driver's app: it must not reach the server's own network.
    for endpoint in ("http://127.0.0.1:9/push", "http://169.254.169.254/latest/meta-data/", "http://2130706433/push"):
        Driver.objects.filter(pk=offer.driver_id).update(push_subscription=web_push_subscription(endpoint))
        offer.driver.refresh_from_db()
        caplog.clear()
        push_if_not_connected(offer)  # does not raise
        assert f"push to driver {offer.driver_id} failed (New delivery offer): address not allowed" in caplog.text
