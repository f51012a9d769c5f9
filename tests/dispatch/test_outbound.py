"""The service calls out only where it should: URLs staff enter (notifiers, a shop's Admin
API) and the push gateway cannot make it reach internal addresses, at save time or at call
time, and a failed call is recorded as a coarse category that probes nothing."""

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from audit.actors import Actor
from dispatch.models import ShopChannel
from dispatch.outbound import OutboundAddressRefused, OutboundFailed, address_is_allowed, outbound_post, outbound_url_check
from dispatch.services import shop_channel_register
from escalation.models import NotificationChannel, Team
from tests.hook_receiver import HookReceiver
from usecases import orders as order_usecases
from vendure.admin_api import VendureAdminClient, VendureUnavailable

FORBIDDEN_ADDRESSES = [
    "127.0.0.1",
    "127.255.0.9",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
]

FORBIDDEN_URLS = [
    "http://127.0.0.1/hook",
    "http://localhost:8000/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0177.0.0.1/",  # octal
    "http://0x7f.1/",  # hexadecimal, short form
    "http://017700000001/",
    "http://[::1]:8080/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1%25eth0]/",
    "http://0.0.0.0:8000/",
    "http://10.0.0.5/admin-api",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http://user:password@example.com/",
    "http:///nohost",
]


@pytest.mark.parametrize("address", FORBIDDEN_ADDRESSES)
def test_internal_addresses_are_not_allowed(address):
    assert not address_is_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001::200e"])
def test_public_addresses_are_allowed(address):
    assert address_is_allowed(ipaddress.ip_address(address))


def test_an_allowed_network_is_allowed_and_nothing_else(settings):
    settings.DISPATCH_OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    assert address_is_allowed(ipaddress.ip_address("127.0.0.1"))
    assert address_is_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not address_is_allowed(ipaddress.ip_address("169.254.169.254"))
    assert not address_is_allowed(ipaddress.ip_address("::1"))


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_a_forbidden_url_is_refused_at_save_time(url):
    with pytest.raises(OutboundAddressRefused):
        outbound_url_check(url)


def test_a_public_url_is_accepted_at_save_time():
    outbound_url_check("https://93.184.216.34/hooks")
    outbound_url_check("https://hooks.slack.com.invalid/services/T0/B0/x")  # not resolvable now: checked at each call


@pytest.fixture
def receiver():
    hook = HookReceiver()
    yield hook
    hook.close()


def port_of(receiver):
    return receiver.server.server_address[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1", "localhost", "[::ffff:127.0.0.1]"])
def test_a_call_to_an_internal_address_is_refused_and_never_reaches_it(receiver, host):
    with pytest.raises(OutboundFailed) as refused:
        outbound_post(f"http://{host}:{port_of(receiver)}/hook", content=b"{}", headers={}, timeout_s=2)
    assert refused.value.category == "address not allowed"
    assert receiver.requests == []


def test_the_call_connects_to_the_address_it_checked_and_keeps_the_host_name(receiver, settings, monkeypatch):
    # A name that resolves once to an allowed address and then (rebinding) elsewhere: the
    # call resolves it once, checks that address and connects to it, with the name as Host.
    settings.DISPATCH_OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    real = socket.getaddrinfo
    lookups = []

    def rebinding(host, *args, **kwargs):
        if host == "shop.example":
            lookups.append(host)
            answer = "127.0.0.1" if len(lookups) == 1 else "169.254.169.254"
            return real(answer, *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    response = outbound_post(f"http://shop.example:{port_of(receiver)}/hook", content=b"{}", headers={}, timeout_s=2)
    assert response.status_code == 202
    assert lookups == ["shop.example"]
    assert receiver.requests[0]["headers"]["Host"] == f"shop.example:{port_of(receiver)}"


def test_a_name_resolving_to_an_internal_address_is_refused_at_call_time(receiver, monkeypatch):
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real("127.0.0.1" if host == "evil.example" else host, *a, **k))
    with pytest.raises(OutboundFailed, match=r"^address not allowed$"):
        outbound_post(f"http://evil.example:{port_of(receiver)}/hook", content=b"{}", headers={}, timeout_s=2)
    assert receiver.requests == []


class _Server:
    """A local HTTP server answering every POST with what `answer(handler)` writes."""

    def __init__(self, answer):
        outer = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_redirect_is_not_followed(outbound_to_loopback):
    target = _Server(lambda h: (h.send_response(200), h.end_headers()))

    def redirect(handler):
        handler.send_response(307)
        handler.send_header("Location", target.url)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    redirector = _Server(redirect)
    try:
        response = outbound_post(redirector.url, content=b"{}", headers={}, timeout_s=2)
        assert response.status_code == 307 and not response.is_success
        assert target.hits == 0
    finally:
        redirector.close()
        target.close()


def test_an_answer_larger_than_the_cap_is_cut_off(outbound_to_loopback):
    def huge(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(4 * 1024 * 1024))
        handler.end_headers()
        try:
            handler.wfile.write(b"x" * 4 * 1024 * 1024)
        except OSError:
            pass

    server = _Server(huge)
    try:
        with pytest.raises(OutboundFailed, match=r"^response too large$"):
            outbound_post(server.url, content=b"{}", headers={}, timeout_s=5, max_response_bytes=64 * 1024)
    finally:
        server.close()


def test_a_refused_connection_is_recorded_as_its_category_only(outbound_to_loopback):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(OutboundFailed) as failed:
        outbound_post(f"http://127.0.0.1:{closed_port}/x", content=b"{}", headers={}, timeout_s=2)
    assert str(failed.value) == "connection refused"


def test_the_admin_api_client_reports_categories_not_answers(outbound_to_loopback):
    def leaky(handler):
        body = b'{"internal": "secret config of an internal service"}'
        handler.send_response(503)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server = _Server(leaky)
    try:
        with pytest.raises(VendureUnavailable) as failed:
            VendureAdminClient(url=server.url, token="t", channel_token="c", timeout_s=2).transition_fulfillment(fulfillment_id="1", state="Shipped")
        assert str(failed.value) == "HTTP 503"
    finally:
        server.close()


# --- Save time: the forms and services staff use -------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["slack", "webhook"])
def test_a_notifier_url_pointing_inside_is_refused_when_saved(kind):
    team = Team.objects.create(name="T", slug="t")
    channel = NotificationChannel(team=team, kind=kind, target="http://169.254.169.254/latest/meta-data/", secret="s" * 20)
    with pytest.raises(ValidationError) as refused:
        channel.full_clean()
    assert "target" in refused.value.message_dict
    assert "internal address" in refused.value.message_dict["target"][0]


@pytest.mark.django_db
def test_a_shop_admin_api_url_pointing_inside_is_refused_when_saved():
    channel = ShopChannel(token="tok", name="Shop", webhook_secret="s" * 20, pickup_lat=52.5, pickup_lon=13.4, admin_api_url="http://127.0.0.1:3000/admin-api")
    with pytest.raises(ValidationError) as refused:
        channel.full_clean()
    assert "admin_api_url" in refused.value.message_dict
    with pytest.raises(OutboundAddressRefused):
        shop_channel_register(
            token="tok",
            name="Shop",
            webhook_secret="s" * 20,
            pickup_lat=52.5,
            pickup_lon=13.4,
            admin_api_url="http://[::ffff:127.0.0.1]:3000/admin-api",
            admin_api_token="t",
            actor=Actor.system("test"),
        )
    with pytest.raises(CommandError, match="internal address"):
        call_command(
            "create_shop_channel",
            *["--token", "tok", "--name", "Shop", "--secret", "s" * 20, "--pickup", "52.5,13.4", "--admin-api-url", "http://2130706433/admin-api"],
        )
    assert not ShopChannel.objects.exists()


# --- Call time: every caller goes through the check ------------------------------------------


@pytest.mark.django_db
def test_a_shop_admin_api_on_an_internal_address_is_never_called(receiver):
    from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
    from tests.helpers import receive_order
    from vendure.models import FulfillmentStep
    from vendure.services import report_fulfillments_due

    # given a channel stored before the save-time check existed (or written to the table)
    ZoneFactory()
    channel = ShopChannelFactory(admin_api_url=f"http://127.0.0.1:{port_of(receiver)}/admin-api", admin_api_token="t")
    driver = DriverFactory()
    order = receive_order(channel)
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    report_fulfillments_due()
    assert receiver.requests == []
    assert FulfillmentStep.objects.get(order=order).last_error == "address not allowed"


@pytest.mark.django_db
def test_a_notifier_on_an_internal_address_is_never_called(receiver, ownership):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from escalation import services
    from escalation.models import Notification
    from tests.factories import ShopChannelFactory, ZoneFactory
    from tests.helpers import receive_order

    team = Team.objects.get(slug="dispatchers")
    team.channels.update(is_active=False)
    team.channels.create(kind="slack", target=f"http://localhost:{port_of(receiver)}/hook")
    ZoneFactory()
    receive_order(ShopChannelFactory())
    later = timezone.now() + timedelta(hours=1)
    with time_machine.travel(later, tick=False):
        services.open_escalations_due(now=later)
        services.send_notifications_due()
    assert Notification.objects.exists()
    assert receiver.requests == []
    assert set(Notification.objects.values_list("last_error", flat=True)) == {"address not allowed"}


@pytest.mark.django_db
def test_the_push_gateway_on_an_internal_address_is_never_called(receiver, settings, caplog):
    from offers.push import push_to_driver_if_not_connected
    from tests.factories import DriverFactory

    settings.DISPATCH_PUSH_BACKEND = "offers.push.WebhookBackend"
    settings.DISPATCH_PUSH_WEBHOOK_URL = f"http://0x7f.1:{port_of(receiver)}/push"
    push_to_driver_if_not_connected(DriverFactory(), "t", "b", {})
    assert receiver.requests == []
    assert "address not allowed" in caplog.text


@pytest.fixture
def tls_shop(tmp_path, outbound_to_loopback, monkeypatch):
    """An HTTPS server on 127.0.0.1 with a certificate for shop.example only, trusted by the
    outbound path for this test; it records the TLS server name each client asked for."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    import dispatch.outbound

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("shop.example")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    server_names = []
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    server_context.sni_callback = lambda sock, server_name, ctx: server_names.append(server_name)
    server = _Server(lambda h: (h.send_response(200), h.send_header("Content-Length", "2"), h.end_headers(), h.wfile.write(b"{}")))
    server.server.socket = server_context.wrap_socket(server.server.socket, server_side=True)
    client_context = ssl.create_default_context(cafile=str(cert_path))
    monkeypatch.setattr(dispatch.outbound.httpx, "create_ssl_context", lambda **kwargs: client_context)
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real("127.0.0.1" if host.endswith(".example") else host, *a, **k))
    yield server.server.server_address[1], server_names
    server.close()


def test_https_connects_to_the_checked_address_with_the_host_name_for_tls(tls_shop):
    port, server_names = tls_shop
    response = outbound_post(f"https://shop.example:{port}/admin-api", content=b"{}", headers={}, timeout_s=5)
    assert response.status_code == 200
    assert server_names == ["shop.example"]  # SNI is the URL's name, not the address connected to


def test_a_certificate_for_another_name_is_a_tls_error(tls_shop):
    port, _ = tls_shop
    with pytest.raises(OutboundFailed) as failed:
        outbound_post(f"https://other.example:{port}/admin-api", content=b"{}", headers={}, timeout_s=5)
    assert failed.value.category == "TLS error"


def test_a_server_answering_a_byte_at_a_time_cannot_hold_the_call_past_its_timeout(outbound_to_loopback):
    # each byte comes well within the per-read timeout; only a bound on the whole call stops it
    import socket as socketlib
    import threading
    import time

    from dispatch.outbound import OutboundFailed, outbound_post

    listener = socketlib.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def dribble():
        conn, _ = listener.accept()
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            if stop.is_set():
                break
            try:
                conn.send(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
        conn.close()

    threading.Thread(target=dribble, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(OutboundFailed) as failed:
            outbound_post(f"http://127.0.0.1:{listener.getsockname()[1]}/hook", content=b"{}", headers={}, timeout_s=1.0)
    finally:
        stop.set()
        listener.close()
    assert failed.value.category == "timeout"
    assert time.monotonic() - started < 2.5
