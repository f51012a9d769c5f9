"""Under the strict Content-Security-Policy every page still works in Chromium, and none reports a
violation: admin lists and change forms with their scripts, the support pages, the live zone
pages (htmx polling, the Leaflet map) and the API docs (Swagger UI from our own static files)."""

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from waffle.models import Switch

from dispatch.models import Driver
from tests.browser.test_admin_browser import log_in, staff_user
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("staff_groups")]

# Registered before any page script runs; Playwright's init scripts are not subject to the page's CSP.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture(autouse=True)
def _no_map_tiles(settings):
    settings.DISPATCH_MAP_TILES_URL = ""


@pytest.fixture
def watched(page):
    """The page, with every CSP violation and every console error recorded."""
    console: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))

    def violations() -> list[str]:
        recorded = page.evaluate("window.__cspViolations || []")
        return recorded + [line for line in console if "Content Security Policy" in line or line.startswith("page error")]

    page.violations = violations
    return page


def visit(page, url, ready):
    response = page.goto(url)
    assert response.status == 200, url
    page.wait_for_selector(ready, timeout=10000)
    page.wait_for_timeout(200)  # violations are reported asynchronously
    assert page.violations() == [], url


def test_admin_pages_and_their_scripts_work_under_the_policy(watched, live_server):
    page = watched
    zone = ZoneFactory()
    driver = DriverFactory(name="Rosa Weber", capacity=1)
    order = receive_order(ShopChannelFactory(), code="CSP-1")
    # Transactional tests empty the tables the migrations seeded: seed a switch and a sweep again.
    Switch.objects.get_or_create(name="v2_offers")
    every_2s, _ = IntervalSchedule.objects.get_or_create(every=2, period="seconds")
    sweep, _ = PeriodicTask.objects.get_or_create(name="Expire offers", defaults={"task": "offers.expire_offers_due", "interval": every_2s})
    user, password = staff_user("ops")
    user.is_superuser = True  # every admin page, third-party ones included
    user.save()
    log_in(page, live_server, user.username, password)
    base = live_server.url

    visit(page, f"{base}/admin/", "#content-main")
    visit(page, f"{base}/admin/dispatch/order/", "#result_list")
    visit(page, f"{base}/admin/dispatch/order/{order.pk}/change/", "#content-main")
    visit(page, f"{base}/admin/waffle/switch/", "#result_list")
    visit(page, f"{base}/admin/django_celery_beat/periodictask/", "#result_list")
    visit(page, f"{base}/admin/django_celery_beat/periodictask/{sweep.pk}/change/", "#content-main")
    visit(page, f"{base}/admin/audit/auditevent/", "#result_list")

    # The admin's own scripts run: a zone's slug is filled from its name as ops type it...
    visit(page, f"{base}/admin/dispatch/zone/add/", "#id_name")
    page.locator("#id_name").press_sequentially("Prenzlauer Berg")  # prepopulate listens to keyup
    page.wait_for_function("() => document.getElementById('id_slug').value === 'prenzlauer-berg'", timeout=3000)
    # ...the two-list zone picker is built by SelectFilter, and the user picker by select2.
    visit(page, f"{base}/admin/dispatch/driver/{driver.pk}/change/", "#id_zones_from")
    assert page.locator("#id_zones_to option").count() == 1
    page.click(".field-user .select2-selection")
    page.wait_for_selector(".select2-results__option", timeout=5000)
    assert page.violations() == []
    assert zone.pk and Driver.objects.get(pk=driver.pk).name == "Rosa Weber"


def test_support_and_zone_pages_work_under_the_policy(watched, live_server):
    page = watched
    zone = ZoneFactory()
    DriverFactory(name="Busy Bea", capacity=1, last_lat=52.52, last_lon=13.39)
    channel = ShopChannelFactory()
    order = receive_order(channel, code="CSP-1")
    receive_order(channel, code="CSP-2")  # waits: nobody free
    user, password = staff_user("ops")
    log_in(page, live_server, user.username, password)
    base = live_server.url

    visit(page, f"{base}/support/?order=CSP-1", "#results")
    visit(page, f"{base}/support/orders/{order.pk}/", "#timeline")
    visit(page, f"{base}/ops/zones/", f"tr[data-zone='{zone.slug}']")
    # htmx polls the table: the swap happens (the row is replaced by a fresh copy) under the policy
    page.evaluate(f"document.querySelector(\"tr[data-zone='{zone.slug}']\").dataset.seen = '1'")
    page.wait_for_function(f"() => !document.querySelector(\"tr[data-zone='{zone.slug}']\").dataset.seen", timeout=5000)
    visit(page, f"{base}/ops/zones/{zone.slug}/", "#waiting-orders")
    page.wait_for_function("() => document.getElementById('map').dataset.markers === '2'", timeout=5000)
    assert page.violations() == []


@pytest.mark.parametrize("path", ["/api/docs/", "/api/docs/v2/"])
def test_api_docs_render_from_local_assets_under_the_policy(watched, live_server, path):
    page = watched
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if not request.url.startswith(live_server.url) else None)
    visit(page, f"{live_server.url}{path}", ".opblock")
    assert outside == []


def test_the_landing_page_login_and_error_pages_report_no_violation(watched, live_server):
    page = watched
    visit(page, f"{live_server.url}/", "h1")
    visit(page, f"{live_server.url}/admin/login/", "#id_username")
    assert page.goto(f"{live_server.url}/no/such/page/").status == 404
    page.wait_for_selector("h1")
    page.wait_for_timeout(200)
    assert page.violations() == []
