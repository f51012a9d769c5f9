"""What a shop or a driver sends is shown as text on the ops pages, in a real Chromium: an order
code and a driver name made of HTML run nothing and read literally in the map's tooltips."""

import pytest

from tests.browser.test_admin_browser import log_in, staff_user
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("staff_groups")]

HOSTILE_CODE = "<img src=x onerror=alert(1)>"
HOSTILE_NAME = "<script>alert(2)</script><img src=y onerror=alert(3)>"


@pytest.fixture(autouse=True)
def _no_map_tiles(settings):
    settings.DISPATCH_MAP_TILES_URL = ""


def test_zone_map_tooltips_show_hostile_order_codes_and_driver_names_as_text(page, live_server):
    # Given a waiting order whose code is HTML, and a busy driver whose name is HTML
    zone = ZoneFactory()
    DriverFactory(name=HOSTILE_NAME, capacity=1, last_lat=52.52, last_lon=13.39)
    channel = ShopChannelFactory()
    receive_order(channel, code="FIRST-1")  # the driver takes it and is busy
    receive_order(channel, code=HOSTILE_CODE, lat=52.525, lon=13.41)  # nobody free: it waits
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    user, password = staff_user("ops")
    log_in(page, live_server, user.username, password)

    # When ops open the zone and hover both markers
    page.goto(f"{live_server.url}/ops/zones/{zone.slug}/")
    page.wait_for_function("() => document.getElementById('map').dataset.markers === '2'", timeout=5000)
    tooltips = []
    for colour in ("#d93025", "#f29900"):  # the waiting order, the busy driver
        page.hover(f"path.leaflet-interactive[stroke='{colour}']", force=True)
        page.wait_for_selector(".leaflet-tooltip", timeout=3000)
        tooltips.append(page.inner_text(".leaflet-tooltip"))
        page.mouse.move(0, 0)
        page.wait_for_selector(".leaflet-tooltip", state="detached", timeout=3000)

    # Then the text shows literally, and nothing ran
    assert HOSTILE_CODE in tooltips[0]
    assert HOSTILE_NAME in tooltips[1]
    assert page.locator("#map img[src=x], #map img[src=y], #map script").count() == 0
    page.wait_for_timeout(300)  # an onerror handler fires as soon as the broken image fails
    assert dialogs == []
