"""Drivers' positions: a history only while they hold an order, one fix kept per interval,
refused while offline, validated in one place, deleted after the retention, never audited."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.actors import Actor
from audit.models import AuditEvent
from availability.models import PositionFix
from availability.services import driver_position_update, position_history_delete_due
from dispatch.errors import DriverOffline, InvalidInput
from dispatch.models import Driver
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from usecases import drivers as driver_usecases
from usecases import orders as order_usecases

pytestmark = pytest.mark.django_db


@pytest.fixture
def holding():
    """A driver holding an order (assigned to them)."""
    ZoneFactory()
    driver = DriverFactory(capacity=2)
    order = receive_order(ShopChannelFactory())
    if order.driver_id != driver.pk:
        order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
    return driver


def test_a_driver_holding_nothing_keeps_only_their_last_position():
    driver = DriverFactory()
    taken = driver_position_update(driver_id=driver.pk, lat=52.5, lon=13.4)
    assert taken is not None and taken.is_kept is False
    driver.refresh_from_db()
    assert (driver.last_lat, driver.last_lon) == (52.5, 13.4)
    assert not PositionFix.objects.exists()


def test_while_holding_an_order_one_fix_an_interval_is_kept_and_the_rest_coalesced(holding, settings):
    settings.DISPATCH_POSITION_MIN_INTERVAL_S = 2
    start = timezone.now()
    first = driver_position_update(driver_id=holding.pk, lat=52.50, lon=13.40, accuracy_m=8, now=start)
    second = driver_position_update(driver_id=holding.pk, lat=52.51, lon=13.41, now=start + timedelta(seconds=1))
    third = driver_position_update(driver_id=holding.pk, lat=52.52, lon=13.42, now=start + timedelta(seconds=2.5))
    assert (first.is_kept, second.is_kept, third.is_kept) == (True, False, True)
    assert list(PositionFix.objects.order_by("received_at").values_list("lat", "accuracy_m")) == [(52.50, 8.0), (52.52, None)]
    holding.refresh_from_db()
    assert (holding.last_lat, holding.last_lon) == (52.52, 13.42)  # the row always has the newest


def test_an_older_fix_changes_nothing(holding):
    now = timezone.now()
    driver_position_update(driver_id=holding.pk, lat=52.50, lon=13.40, at=now, now=now)
    assert driver_position_update(driver_id=holding.pk, lat=1.0, lon=1.0, at=now - timedelta(minutes=1), now=now + timedelta(seconds=5)) is None
    holding.refresh_from_db()
    assert holding.last_lat == 52.50 and PositionFix.objects.count() == 1


def test_an_offline_driver_is_refused_and_nothing_is_stored():
    driver = DriverFactory(availability=Driver.Availability.OFFLINE)
    with pytest.raises(DriverOffline):
        driver_position_update(driver_id=driver.pk, lat=52.5, lon=13.4)
    driver.refresh_from_db()
    assert driver.last_lat is None


def test_an_offline_driver_gets_a_clear_409_over_the_v1_api():
    driver = DriverFactory(availability=Driver.Availability.OFFLINE)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=driver.user).key}")
    response = client.post("/api/v1/me/position/", {"lat": 52.5, "lon": 13.4}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "driver_offline"


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"accuracy_m": -1}, "accuracy_m"),
        ({"accuracy_m": 1e9}, "accuracy_m"),
        ({"lat": 91}, "latitude"),
    ],
)
def test_a_bad_fix_is_refused_in_the_one_place_and_nothing_is_stored(holding, fields, why):
    with pytest.raises(InvalidInput, match=why):
        driver_position_update(driver_id=holding.pk, **{"lat": 52.5, "lon": 13.4, **fields})
    holding.refresh_from_db()
    assert holding.last_lat is None and not PositionFix.objects.exists()


@pytest.mark.parametrize("ahead", [timedelta(seconds=20), timedelta(days=365 * 900)])
def test_a_fix_timed_ahead_of_the_server_is_taken_as_now_never_stored_in_the_future(holding, ahead):
    now = timezone.now()
    taken = driver_position_update(driver_id=holding.pk, lat=52.5, lon=13.4, at=now + ahead, now=now)
    assert taken.recorded_at == now
    holding.refresh_from_db()
    assert holding.last_position_at == now and PositionFix.objects.get().recorded_at == now


def test_history_past_its_retention_is_deleted_and_nothing_younger(holding, settings):
    settings.DISPATCH_POSITION_RETENTION_DAYS = 30
    now = timezone.now()
    for age_days in (31, 29):
        moment = now - timedelta(days=age_days)
        PositionFix.objects.create(driver=holding, lat=52.5, lon=13.4, recorded_at=moment, received_at=moment)
    assert position_history_delete_due(now=now) == 1
    assert position_history_delete_due(now=now) == 0
    assert PositionFix.objects.get().received_at > now - timedelta(days=30)


def test_the_audit_trail_keeps_no_coordinates(holding):
    driver_usecases.driver_position_report(driver_id=holding.pk, lat=52.123456, lon=13.654321)
    order = holding.orders.get()
    order_usecases.order_pick_up(order_id=order.pk, driver=holding)
    driver_usecases.driver_position_report(driver_id=holding.pk, lat=52.123457, lon=13.654322)
    order_usecases.order_deliver(order_id=order.pk, driver=holding)
    for event in AuditEvent.objects.all():
        text = f"{event.data} {event.before} {event.after}"
        assert "52.12345" not in text and "13.65432" not in text, event.kind
