"""The built-in arrival estimate, what each order keeps of it, and what the sweep learns."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.actors import Actor
from dispatch.geometry import distance_m
from dispatch.models import Driver
from eta.estimate import Travel, estimate_arrival
from eta.models import OrderEta, TravelProfile
from eta.selectors import travel_for
from eta.services import travel_profiles_refresh_due
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from usecases import orders as order_usecases

pytestmark = pytest.mark.django_db

PICKUP, DROPOFF = (52.5163, 13.3777), (52.5253, 13.3777)  # 1 km due north


@pytest.fixture(autouse=True)
def _eta_settings(settings):
    settings.DISPATCH_ETA_DETOUR_FACTOR = 1.35
    settings.DISPATCH_ETA_SPEED_MPS = {"on_foot": 1.3, "bicycle": 4.2, "scooter": 6.5, "car": 7.0, "van": 6.5}
    settings.DISPATCH_ETA_PICKUP_HANDLING_S = 180
    settings.DISPATCH_ETA_DROPOFF_HANDLING_S = 120
    settings.DISPATCH_ETA_DEFAULT_SPREAD_S = 300
    settings.DISPATCH_ETA_DEFAULT_SPREAD_SHARE = 0.3
    settings.DISPATCH_ETA_MIN_WINDOW_S = 300
    settings.DISPATCH_ETA_MIN_SAMPLES = 30


def test_a_first_estimate_is_distance_over_speed_plus_handling_with_a_default_spread():
    now = timezone.now()
    estimate = estimate_arrival(travel=Travel(speed_mps=4.2), origin=PICKUP, leaves_at=now, via_pickup=None, dropoff=DROPOFF, now=now)
    travel_s = distance_m(*PICKUP, *DROPOFF) * 1.35 / 4.2 + 120
    assert abs((estimate.arrive_at - now).total_seconds() - travel_s) < 0.01
    spread_s = 300 + 0.3 * travel_s
    assert abs((estimate.latest - estimate.earliest).total_seconds() - spread_s) < 0.01
    assert not estimate.is_learned and "too few deliveries" in estimate.confidence_words


def test_a_learned_window_comes_from_the_zones_past_errors():
    now = timezone.now()
    travel = Travel(speed_mps=5.0, error_p10_s=-60, error_p90_s=240, sample_count=40)
    estimate = estimate_arrival(travel=travel, origin=PICKUP, leaves_at=now, via_pickup=None, dropoff=DROPOFF, now=now)
    assert estimate.earliest == estimate.arrive_at - timedelta(seconds=60)
    assert estimate.latest == estimate.arrive_at + timedelta(seconds=240)
    assert estimate.is_learned and "40" in estimate.confidence_words


def test_on_the_way_to_the_pickup_the_estimate_goes_through_it_and_its_handling():
    now = timezone.now()
    travel = Travel(speed_mps=4.2)
    direct = estimate_arrival(travel=travel, origin=PICKUP, leaves_at=now, via_pickup=None, dropoff=DROPOFF, now=now)
    via = estimate_arrival(travel=travel, origin=(52.5073, 13.3777), leaves_at=now, via_pickup=PICKUP, dropoff=DROPOFF, now=now)
    extra_s = distance_m(52.5073, 13.3777, *PICKUP) * 1.35 / 4.2 + 180
    assert abs((via.arrive_at - direct.arrive_at).total_seconds() - extra_s) < 0.01


def test_a_window_never_ends_in_the_past_nor_is_narrower_than_the_minimum():
    now = timezone.now()
    travel = Travel(speed_mps=4.2, error_p10_s=-30, error_p90_s=30, sample_count=50)
    estimate = estimate_arrival(travel=travel, origin=PICKUP, leaves_at=now - timedelta(hours=2), via_pickup=None, dropoff=DROPOFF, now=now)
    assert estimate.arrive_at == now and estimate.earliest == now
    assert estimate.latest - estimate.earliest == timedelta(seconds=300)


def test_each_order_keeps_the_estimate_shown_at_assignment_and_pickup_and_its_arrival():
    ZoneFactory()
    order = receive_order(ShopChannelFactory(), lat=DROPOFF[0], lon=DROPOFF[1])
    driver = DriverFactory(vehicle=Driver.Vehicle.SCOOTER)
    Driver.objects.filter(pk=driver.pk).update(last_lat=52.51, last_lon=13.37, last_position_at=timezone.now())
    order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
    kept = OrderEta.objects.get(order=order)
    assert kept.vehicle == "scooter" and kept.source == "built_in" and kept.at_assignment is not None and kept.at_pickup is None
    assert kept.at_assignment_earliest <= kept.at_assignment <= kept.at_assignment_latest
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    order_usecases.order_deliver(order_id=order.pk, driver=driver)
    kept.refresh_from_db()
    assert kept.at_pickup is not None and kept.picked_up_at is not None and kept.arrived_at is not None
    assert abs(kept.pickup_to_dropoff_m - distance_m(order.pickup_lat, order.pickup_lon, *DROPOFF) * 1.35) < 0.01


def test_an_order_without_drop_off_coordinates_gets_no_estimate():
    ZoneFactory()
    order = receive_order(ShopChannelFactory(), lat=None, lon=None, postal_code="10115")
    driver = DriverFactory()
    order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
    assert not OrderEta.objects.filter(order=order).exists()


def test_the_sweep_learns_speed_and_error_percentiles_per_zone_and_vehicle_once_there_are_enough():
    zone = ZoneFactory()
    channel = ShopChannelFactory()
    now = timezone.now()
    for n in range(30):
        order = receive_order(channel, code=f"LEARN-{n}")
        picked_up = now - timedelta(hours=1)
        arrived = picked_up + timedelta(seconds=120 + 300)  # 1,500 m in 300 s of riding: 5 m/s
        OrderEta.objects.create(
            order=order,
            zone=zone,
            vehicle="bicycle",
            source="built_in",
            at_pickup=arrived - timedelta(seconds=n * 10),
            picked_up_at=picked_up,
            pickup_to_dropoff_m=1500,
            arrived_at=arrived,
        )
    assert travel_profiles_refresh_due(now=now) == 2  # the zone's, and every zone's
    profile = TravelProfile.objects.get(zone=zone, vehicle="bicycle")
    assert profile.speed_mps == pytest.approx(5.0) and profile.sample_count == 30
    assert 0 <= profile.error_p10_s < profile.error_p90_s <= 290
    travel = travel_for(zone.pk, "bicycle")
    assert travel.is_learned and travel.speed_mps == pytest.approx(5.0)
    assert travel_for(zone.pk, "car").speed_mps == 7.0  # nothing learned for cars: the default


def test_too_few_deliveries_learn_nothing():
    zone = ZoneFactory()
    order = receive_order(ShopChannelFactory())
    now = timezone.now()
    OrderEta.objects.create(
        order=order,
        zone=zone,
        vehicle="bicycle",
        source="built_in",
        at_pickup=now,
        picked_up_at=now - timedelta(minutes=9),
        pickup_to_dropoff_m=1500,
        arrived_at=now,
    )
    assert travel_profiles_refresh_due(now=now) == 0 and not TravelProfile.objects.exists()


def test_ops_see_how_right_the_estimates_were_per_zone_vehicle_and_week(client, staff_groups):
    from tests.factories import staff_member

    zone = ZoneFactory()
    channel = ShopChannelFactory()
    now = timezone.now()
    for n, error_s in enumerate((-120, 60, 180, 600)):
        order = receive_order(channel, code=f"ACC-{n}")
        shown = now - timedelta(minutes=30)
        OrderEta.objects.create(
            order=order,
            zone=zone,
            vehicle="bicycle",
            source="built_in",
            at_pickup=shown,
            at_pickup_earliest=shown - timedelta(seconds=300),
            at_pickup_latest=shown + timedelta(seconds=300),
            arrived_at=shown + timedelta(seconds=error_s),
        )
    client.force_login(staff_member("ops"))
    response = client.get("/ops/eta/?stage=pickup&weeks=2")
    assert response.status_code == 200
    [row] = response.context["rows"]
    assert (row.zone, row.vehicle, row.count) == ("Mitte", "bicycle", 4)
    assert row.mean_abs_error_s == pytest.approx(240) and row.p90_abs_error_s == 600 and row.bias_s == pytest.approx(180)
    assert row.inside_window == 0.75
    assert client.get("/ops/eta/?stage=<script>&weeks=abc").status_code == 200  # bad filters fall back, never a 500
    client.force_login(staff_member("support"))
    assert client.get("/ops/eta/").status_code == 403
