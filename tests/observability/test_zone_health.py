"""The zone health dashboard: for ops only, the figures of each zone, its colour by its own
thresholds, a fragment cheap enough to poll every second, and the zone page's map data."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.actors import Actor
from dispatch import services as dispatch_services
from dispatch.models import Driver, Order
from escalation.models import Escalation
from observability.selectors import zone_health
from offers.models import Offer
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory, staff_member
from tests.helpers import receive_order
from usecases import offers as offer_usecases

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups")]
ME = Actor.system("test")


@pytest.fixture
def ops(client):
    client.force_login(staff_member("ops"))
    return client


def row_of(zone):
    return next(row for row in zone_health() if row.zone.pk == zone.pk)


def test_only_ops_open_the_dashboard(client):
    zone = ZoneFactory()
    for user, status in ((staff_member("ops"), 200), (staff_member("support"), 403), (DriverFactory().user, 403)):
        client.force_login(user)
        for url in ("/ops/zones/", "/ops/zones/rows/", f"/ops/zones/{zone.slug}/", f"/ops/zones/{zone.slug}/map.json"):
            assert client.get(url).status_code == status, (user, url)
    client.logout()
    assert client.get("/ops/zones/").status_code == 302


def test_pages_refuse_writes_and_unknown_zones(ops):
    ZoneFactory()
    assert ops.post("/ops/zones/rows/").status_code == 405
    assert ops.get("/ops/zones/atlantis/").status_code == 404
    assert ops.get("/ops/zones/atlantis/map.json").status_code == 404


def test_each_zone_counts_its_drivers_orders_escalations_and_last_hour(ownership, v2_offers_on, v2_driver):
    zone = ZoneFactory()
    quiet = ZoneFactory(slug="quiet", name="Quiet", area=None, postal_code_prefixes=["999"])
    accepting = v2_driver(capacity=1)
    declining = v2_driver()
    DriverFactory(availability=Driver.Availability.OFFLINE)
    DriverFactory(availability=Driver.Availability.ON_BREAK)
    channel = ShopChannelFactory()
    order = receive_order(channel, code="ZH-1")
    offers = {o.driver_id: o for o in Offer.objects.filter(order=order)}
    if accepting.pk in offers:
        offer_usecases.offer_accept(offer_id=offers[accepting.pk].pk, driver=accepting)
    else:
        offer_usecases.offer_decline(offer_id=offers[declining.pk].pk, driver=declining)
        offer_usecases.offer_accept(offer_id=Offer.objects.get(order=order, state="pending").pk, driver=accepting)
    Driver.objects.filter(pk=declining.pk).update(availability=Driver.Availability.OFFLINE)
    waiting = receive_order(channel, code="ZH-2")  # nobody left: it waits
    Order.objects.filter(pk=waiting.pk).update(status_changed_at=timezone.now() - timedelta(minutes=3))
    Escalation.objects.create(
        order=waiting, zone=zone, trigger="order_unassigned", episode_started_at=timezone.now(), opened_at=timezone.now(), level=2, state="open"
    )
    row = row_of(zone)
    assert (row.available, row.busy, row.on_break, row.offline) == (0, 1, 1, 2)
    assert row.waiting == 1 and 180 <= row.oldest_wait_s < 240
    assert row.escalations_by_level == {2: 1}
    answered = Offer.objects.filter(order=order).exclude(state="pending").exclude(state="withdrawn")
    assert row.acceptance_ratio == pytest.approx(1 / answered.count())
    assert row.median_assign_s is not None and row.median_assign_s >= 0
    assert row.colour == "red" and "escalation past level 1" in row.reasons
    assert (row_of(quiet).colour, row_of(quiet).waiting, row_of(quiet).acceptance_ratio) == ("green", 0, None)


@pytest.mark.parametrize(
    ("waiting", "minutes", "colour"),
    [(0, 0, "green"), (1, 1, "green"), (1, 3, "amber"), (3, 0, "amber"), (1, 11, "red"), (10, 0, "red")],
)
def test_the_colour_follows_the_zones_own_thresholds(waiting, minutes, colour):
    zone = ZoneFactory()  # amber at 3 waiting or 2 min, red at 10 waiting or 10 min (the defaults)
    channel = ShopChannelFactory()
    for n in range(waiting):
        order = receive_order(channel, code=f"T-{n}")
        Order.objects.filter(pk=order.pk).update(status_changed_at=timezone.now() - timedelta(minutes=minutes, seconds=5))
    assert row_of(zone).colour == colour


def test_a_zone_with_stricter_thresholds_turns_amber_sooner():
    zone = ZoneFactory()
    receive_order(ShopChannelFactory(), code="STRICT-1")
    assert row_of(zone).colour == "green"
    zone.health_amber_waiting = 1
    dispatch_services.reference_data_save(instance=zone, changed_fields=["health_amber_waiting"], is_new=False, actor=ME)
    assert row_of(zone).colour == "amber"


def test_the_polled_fragment_takes_a_fixed_number_of_queries(ops, django_assert_max_num_queries):
    channel = ShopChannelFactory()
    for n in range(4):
        zone = ZoneFactory(slug=f"z{n}", name=f"Zone {n}", area=None, postal_code_prefixes=[f"{n}0"])
        DriverFactory(zones=[zone])
        receive_order(channel, code=f"Q-{n}", postal_code=f"{n}0115", lat=None, lon=None)
    with django_assert_max_num_queries(10):
        response = ops.get("/ops/zones/rows/")
    assert response.status_code == 200
    assert response.content.count(b"data-zone=") == 4
    assert b'hx-trigger="every 1s"' in response.content


def test_the_zone_page_lists_and_maps_its_waiting_orders_and_drivers(ops):
    zone = ZoneFactory()
    order = receive_order(ShopChannelFactory(), code="MAP-1")
    driver = DriverFactory(availability=Driver.Availability.ON_BREAK, last_lat=52.52, last_lon=13.40)
    page = ops.get(f"/ops/zones/{zone.slug}/")
    assert b"MAP-1" in page.content and driver.name.encode() in page.content
    assert b"vendor/leaflet/leaflet.js" in page.content
    data = ops.get(f"/ops/zones/{zone.slug}/map.json").json()
    assert data["area"] == zone.area
    assert [(o["code"], o["lat"], o["lon"]) for o in data["orders"]] == [("MAP-1", order.dropoff_lat, order.dropoff_lon)]
    assert data["drivers"] == [{"name": driver.name, "lat": 52.52, "lon": 13.40, "availability": "on_break"}]


def test_the_map_works_without_tiles(ops, settings):
    settings.DISPATCH_MAP_TILES_URL = ""
    zone = ZoneFactory()
    page = ops.get(f"/ops/zones/{zone.slug}/")
    assert b"no map tiles configured" in page.content


def test_htmx_and_leaflet_are_served_from_our_static_files(client):
    assert client.get("/static/vendor/htmx/htmx.min.js").status_code == 200
    assert client.get("/static/vendor/leaflet/leaflet.js").status_code == 200
    assert client.get("/static/vendor/leaflet/leaflet.css").status_code == 200
