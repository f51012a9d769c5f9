"""/metrics: protected from the public, multiprocess-safe, and its values follow a scripted
scenario exactly (events as counter deltas, state as the database has it)."""

import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audit.actors import Actor
from availability.models import DriverSocket
from dispatch.models import Driver, Order
from escalation import services as escalation_services
from observability.services import sweep_run
from offers.models import Offer
from tests.factories import ShopChannelFactory, ZoneFactory
from tests.helpers import post_webhook, ready_event
from usecases import dispatching
from usecases import offers as offer_usecases
from usecases import orders as order_usecases

ME = Actor.system("test")


def scrape(client, **headers):
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_metrics_refuse_the_public_and_answer_the_scraper(client, settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789").status_code == 200
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1, allowed by default
    assert client.post("/metrics").status_code == 405


@pytest.mark.django_db
def test_with_no_allowed_network_only_the_token_opens_metrics_even_from_loopback(client, settings):
    # what production gets by default: a proxy on the same host makes every visitor 127.0.0.1
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789").status_code == 200


def allowed_networks_of(extra_env):
    """METRICS_ALLOWED_NETWORKS as a fresh process computes it from the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ALLOW_ASYNC_UNSAFE", "METRICS_ALLOWED_IPS")}
    env.update(extra_env)
    script = "import django; django.setup(); from django.conf import settings; print(sorted(str(n) for n in settings.METRICS_ALLOWED_NETWORKS))"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, cwd=os.getcwd(), timeout=60)
    return result.stdout.strip().splitlines()[-1]


PRODUCTION = {
    "DISPATCH_ENV": "production",
    "DJANGO_SECRET_KEY": "x" * 60,
    "DJANGO_ALLOWED_HOSTS": "dispatch.example.com",
    "DJANGO_SETTINGS_MODULE": "dispatch.settings",
}


def test_in_production_no_address_may_scrape_without_the_token_unless_configured():
    assert allowed_networks_of(PRODUCTION) == "[]"
    assert allowed_networks_of({**PRODUCTION, "METRICS_ALLOWED_IPS": "10.0.5.0/24"}) == "['10.0.5.0/24']"
    assert allowed_networks_of({"DJANGO_SETTINGS_MODULE": "dispatch.settings"}) == "['127.0.0.1/32', '::1/128']"  # development


@pytest.mark.django_db(transaction=True)
def test_metrics_follow_a_scripted_scenario_exactly(client, ownership, v2_offers_on, v2_driver, settings):
    zone = ZoneFactory()
    channel = ShopChannelFactory()
    before = scrape(client)

    # Two webhooks: one refused, one order in. Nobody is online yet: it waits.
    assert post_webhook(client, channel, ready_event(code="M-1"), secret="wrong-secret-wrong-secret").status_code == 401
    assert post_webhook(client, channel, ready_event(code="M-1")).status_code == 200
    order = Order.objects.get(code="M-1")
    # Three v2 drivers: the first declines, the second lets the offer lapse, the third accepts.
    first, second, third = v2_driver(), v2_driver(), v2_driver()
    for driver in (second, third):
        Driver.objects.filter(pk=driver.pk).update(availability=Driver.Availability.OFFLINE)
    dispatching.order_dispatch(order_id=order.pk)
    offer_usecases.offer_decline(offer_id=Offer.objects.get(driver=first).pk, driver=first)
    Driver.objects.filter(pk=second.pk).update(availability=Driver.Availability.AVAILABLE)
    dispatching.order_dispatch(order_id=order.pk)
    Offer.objects.filter(driver=second).update(expires_at=timezone.now() - timedelta(seconds=1))
    Driver.objects.filter(pk=third.pk).update(availability=Driver.Availability.AVAILABLE)
    for n in range(2):
        DriverSocket.objects.create(driver=third, channel_name=f"specific.a!{n}", opened_at=timezone.now(), seen_at=timezone.now())
    assert offer_usecases.expire_offers_due() == 1  # lapses and offers it to the third driver
    offer_usecases.offer_accept(offer_id=Offer.objects.get(driver=third).pk, driver=third)
    # A second order waits long enough to escalate.
    assert post_webhook(client, channel, ready_event(code="M-2")).status_code == 200
    Order.objects.filter(code="M-2").update(status_changed_at=timezone.now() - timedelta(hours=1))
    sweep_run("escalation.escalate_orders_due", lambda: escalation_services.open_escalations_due(now=timezone.now()))
    # The first order is delivered.
    order_usecases.order_pick_up(order_id=order.pk, driver=third)
    order_usecases.order_deliver(order_id=order.pk, driver=third)

    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    slug = zone.slug
    assert delta("dispatch_webhooks_total", result="accepted", outcome="order_created") == 2
    assert delta("dispatch_webhooks_total", result="refused", outcome="unauthenticated") == 1
    assert delta("dispatch_orders_received_total", zone=slug) == 2
    assert delta("dispatch_offer_events_total", zone=slug, event="sent") == 4  # M-1 three times, M-2 once
    assert delta("dispatch_offer_events_total", zone=slug, event="declined") == 1
    assert delta("dispatch_offer_events_total", zone=slug, event="expired") == 1
    assert delta("dispatch_offer_events_total", zone=slug, event="accepted") == 1
    assert delta("dispatch_offer_time_to_answer_seconds_count", zone=slug, answer="accepted") == 1
    assert delta("dispatch_offer_time_to_answer_seconds_count", zone=slug, answer="expired") == 1
    assert delta("dispatch_order_time_to_assign_seconds_count", zone=slug) == 1
    assert delta("dispatch_orders_finished_total", zone=slug, status="delivered") == 1
    assert delta("dispatch_escalations_opened_total", zone=slug, trigger="order_unassigned") == 1
    assert delta("dispatch_sweep_duration_seconds_count", sweep="escalation.escalate_orders_due") == 1
    # State, read from the database at the scrape.
    m2 = Order.objects.get(code="M-2")
    assert value(after, "dispatch_orders", zone=slug, status=m2.status) == 1
    assert value(after, "dispatch_orders", zone=slug, status="assigned") == 0
    assert value(after, "dispatch_orders_unassigned_ratio", zone=slug) == 1.0
    assert value(after, "dispatch_orders_oldest_waiting_seconds", zone=slug) >= 3600
    assert value(after, "dispatch_escalations_open", level="1", state="open") == 1
    assert value(after, "dispatch_offer_acceptance_ratio", zone=slug) == pytest.approx(1 / 3)
    assert value(after, "dispatch_driver_sockets_connected") == 2
    assert value(after, "dispatch_drivers", availability="available") == 3
    assert 0 <= value(after, "dispatch_sweep_lag_seconds", sweep="escalation.escalate_orders_due") < 60


@pytest.mark.django_db(transaction=True)
def test_counts_from_several_processes_add_up(tmp_path, ownership):
    """Like the ASGI server and the Celery workers: each process writes its own file."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DATABASE_URL": _test_database_url()}
    count = textwrap.dedent(
        """
        import sys, django
        django.setup()
        from observability import metrics
        for _ in range(int(sys.argv[1])):
            metrics.webhook_outcome("order_created", is_accepted=True)
        """
    )
    for times in (3, 4):
        subprocess.run([sys.executable, "-c", count, str(times)], env=env, check=True, cwd=os.getcwd())
    scrape_script = "import django; django.setup(); from observability.exposition import metrics_exposition; print(metrics_exposition().decode())"
    text = subprocess.run([sys.executable, "-c", scrape_script], env=env, check=True, capture_output=True, text=True, cwd=os.getcwd()).stdout
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("dispatch_webhooks_total", (("outcome", "order_created"), ("result", "accepted")))] == 7
    assert ("dispatch_drivers", (("availability", "available"),)) in samples  # the database's state is there too


def _test_database_url():
    settings = connection.settings_dict
    return f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
