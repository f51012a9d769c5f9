import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.actors import Actor
from dispatch.models import Driver, Order
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import json_body, post_webhook, ready_event
from usecases import orders as order_usecases


@pytest.fixture
def address():
    """A client address of its own: rate limits count in the shared cache (Redis), which
    outlives a test and a test run."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


@pytest.fixture
def shop(db):
    ZoneFactory()
    return ShopChannelFactory(name="Kaffeerösterei Mitte")


def webhook_order(client, shop, **kwargs):
    """An order received through the real webhook; returns (order, the answer's body)."""
    response = post_webhook(client, shop, ready_event(**kwargs))
    assert response.status_code == 200, response.content
    body = json_body(response)
    return Order.objects.get(pk=body["order"]), body


def token_of(url):
    return url.rstrip("/").rsplit("/", 1)[1]


@pytest.fixture
def received(client, shop):
    """An order waiting for a driver (nobody online), with its tracking link's token."""
    order, body = webhook_order(client, shop, lat=52.52, lon=13.40)
    return order, token_of(body["tracking_url"])


def assign(order, *, name="Rosa Weber", vehicle=Driver.Vehicle.SCOOTER):
    driver = DriverFactory(name=name, vehicle=vehicle, phone="+4915199999999", capacity=3)
    order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
    return driver


def carry(order, *, name="Rosa Weber", vehicle=Driver.Vehicle.SCOOTER, position_age_s=5.0):
    """The order assigned to a driver who picked it up and whose position is this old."""
    driver = assign(order, name=name, vehicle=vehicle)
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    Driver.objects.filter(pk=driver.pk).update(last_lat=52.51, last_lon=13.39, last_position_at=timezone.now() - timedelta(seconds=position_age_s))
    order.refresh_from_db()
    return driver
