"""Support staff and ops on their pages, in a real Chromium: search, timeline, CSV, the live
zone dashboard. Screenshots land in docs/screenshots/ for the README."""

import csv
import io
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from dispatch.models import Order, Zone
from offers.models import Offer
from tests.browser.test_admin_browser import SCREENSHOTS, log_in, staff_user
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from usecases import offers as offer_usecases
from vendure import sample_payloads

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("staff_groups")]


@pytest.fixture(autouse=True)
def _no_map_tiles(settings):
    settings.DISPATCH_MAP_TILES_URL = ""  # this machine reaches no tile server; the page must not need one


@pytest.fixture
def story(v2_offers_on, v2_driver):
    """STORY-7: offered to Lena, who let it lapse; then to Ali, who accepted."""
    ZoneFactory()
    lena = v2_driver(name="Lena Lapsing")
    order = receive_order(ShopChannelFactory(), code="STORY-7")
    assert Offer.objects.get(order=order).driver_id == lena.pk
    ali = v2_driver(name="Ali Accepting")
    Offer.objects.filter(order=order).update(expires_at=timezone.now() - timedelta(seconds=1))
    offer_usecases.expire_offers_due()
    offer_usecases.offer_accept(offer_id=Offer.objects.get(order=order, driver=ali).pk, driver=ali)
    return order, lena, ali


def test_support_finds_an_order_reads_its_story_and_exports_it(page, live_server, story):
    order, lena, ali = story
    user, password = staff_user("support")
    log_in(page, live_server, user.username, password)

    page.goto(f"{live_server.url}/support/")
    page.fill("#id_order", "STORY-7")
    page.click("button[type=submit]")
    results = page.inner_text("#results")
    assert "offer.expired" in results and "offer.accepted" in results and "Ali Accepting" in results
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "support-search.png"), full_page=True)

    with page.expect_download() as download_info:
        page.click("#export-csv")
    exported = list(csv.DictReader(io.StringIO(open(download_info.value.path()).read())))
    assert {"offer.expired", "offer.accepted"} <= {row["kind"] for row in exported}
    assert all(row["order_code"] == "STORY-7" for row in exported)

    page.click("#results a:text('STORY-7')")
    page.wait_for_selector("#timeline")
    timeline = page.inner_text("#timeline")
    assert timeline.index("offer.expired") < timeline.index("offer.accepted")
    assert "Ali Accepting" in timeline and f"driver {lena.pk}" in timeline
    assert page.inner_text("#order-status") == "Assigned"
    page.screenshot(path=str(SCREENSHOTS / "support-timeline.png"), full_page=True)


def test_support_cannot_reach_admin_change_forms_or_write_anything(page, live_server, story):
    order, _, _ = story
    user, password = staff_user("support")
    log_in(page, live_server, user.username, password)
    page.goto(f"{live_server.url}/admin/dispatch/order/{order.pk}/change/")
    assert page.locator("input[name=_save]").count() == 0  # a view, not a form
    for url in ("/admin/dispatch/zone/add/", "/admin/escalation/escalationpolicy/add/", f"/admin/dispatch/order/{order.pk}/delete/", "/ops/zones/"):
        assert page.goto(f"{live_server.url}{url}").status == 403, url
    page.goto(f"{live_server.url}/support/")
    statuses = page.evaluate(
        """async (orderId) => {
            const token = document.cookie.split('; ').find(c => c.startsWith('csrftoken='))?.split('=')[1] || '';
            const out = [];
            for (const url of ['/support/', `/support/orders/${orderId}/`, '/support/export.csv']) {
              for (const method of ['POST', 'PUT', 'DELETE']) {
                out.push((await fetch(url, {method, headers: {'X-CSRFToken': token}})).status);
              }
            }
            return out;
        }""",
        order.pk,
    )
    assert set(statuses) <= {403, 405} and statuses
    assert Order.objects.get(pk=order.pk).status == Order.Status.ASSIGNED


def test_ops_watch_a_zone_change_live_without_a_reload(page, live_server):
    zone = ZoneFactory()
    Zone.objects.filter(pk=zone.pk).update(health_amber_waiting=1)  # one waiting order turns it amber
    ZoneFactory(slug="kreuzberg", name="Kreuzberg", area=None, postal_code_prefixes=["109"])
    DriverFactory(name="Busy Bea", capacity=1, last_lat=52.52, last_lon=13.39)
    channel = ShopChannelFactory()
    receive_order(channel, code="FIRST-1")  # Bea takes it: she is busy now
    user, password = staff_user("ops")
    log_in(page, live_server, user.username, password)

    page.goto(f"{live_server.url}/ops/zones/")
    row = f"tr[data-zone='{zone.slug}']"
    page.wait_for_selector(row)
    assert page.get_attribute(row, "data-colour") == "green"
    assert page.inner_text(f"{row} [data-field=waiting]") == "0"
    assert page.inner_text(f"{row} [data-field=busy]") == "1"
    page.evaluate("window.notReloaded = true")

    # A shop sends an order; nobody is free: it waits.
    order = sample_payloads.order_payload(vendure_order_id="live-1", code="LIVE-1", lat=52.52, lon=13.40, postal_code="10117")
    raw, headers = sample_payloads.signed_request(channel.token, channel.webhook_secret, sample_payloads.event("order.ready_for_delivery", order))
    assert httpx.post(f"{live_server.url}/webhooks/vendure/", content=raw, headers=headers, timeout=10).status_code == 200
    committed_at = time.monotonic()  # the webhook has answered: the order is stored
    page.wait_for_function(f"() => document.querySelector(\"{row}\").dataset.colour === 'amber'", timeout=5000)
    seen_after_s = time.monotonic() - committed_at
    assert page.inner_text(f"{row} [data-field=waiting]") == "1"
    assert page.evaluate("window.notReloaded") is True
    assert seen_after_s < 2.0  # polled every second: on the page within 2 s of the change
    page.screenshot(path=str(SCREENSHOTS / "zone-health.png"), full_page=True)

    page.click(f"{row} a")
    page.wait_for_selector("#waiting-orders")
    assert "LIVE-1" in page.inner_text("#waiting-orders") and "Busy Bea" in page.inner_text("#zone-drivers")
    page.wait_for_function("() => document.getElementById('map').dataset.markers === '2'", timeout=5000)
    page.screenshot(path=str(SCREENSHOTS / "zone-page.png"), full_page=True)
