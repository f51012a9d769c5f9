"""Why this driver: every dispatch decision records what it saw, and support and ops read it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from availability.services import driver_position_update
from dispatch.models import Driver, Order
from offers.models import Offer
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from usecases import offers as offer_usecases

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("v2_offers_on")]


def decisions(order):
    return list(AuditEvent.objects.filter(order_id=order.pk, kind="dispatch.decided").order_by("id"))


@pytest.fixture
def channel():
    ZoneFactory()
    return ShopChannelFactory()


def test_an_offer_records_the_candidates_ranked_with_distance_idle_time_and_what_each_got(channel, v2_driver):
    # given two v2 drivers with positions, Amira nearer the shop, and one v1 app behind them
    amira, ben = v2_driver(name="Amira"), v2_driver(name="Ben")
    driver_position_update(driver_id=amira.pk, lat=channel.pickup_lat + 0.003, lon=channel.pickup_lon)
    driver_position_update(driver_id=ben.pk, lat=channel.pickup_lat + 0.02, lon=channel.pickup_lon)
    Driver.objects.filter(pk=amira.pk).update(idle_since=timezone.now() - timedelta(minutes=5))
    DriverFactory(name="Old app")
    # when an order arrives (fan-out 1)
    order = receive_order(channel)
    # then the decision names its strategy and outcome, and lists the candidates best first
    [decision] = decisions(order)
    assert decision.after == {"outcome": "offered"}
    assert decision.data["strategy"] == "nearest_then_idle_longest" and decision.data["fanout"] == 1
    first, second, third = decision.data["candidates"]
    assert (first["name"], first["rank"], first["result"], first["by"]) == ("Amira", 1, "offered", "nearest")
    assert 300 <= first["distance_m"] <= 360 and 299 <= first["idle_s"] <= 330
    assert (second["name"], second["rank"], second["result"]) == ("Ben", 2, "not_needed")
    assert second["distance_m"] > first["distance_m"]
    assert (third["name"], third["by"], third["distance_m"]) == ("Old app", "idle_longest", None)
    assert Offer.objects.get(order=order).driver == amira


def test_after_a_decline_the_next_decision_says_who_declined_and_when(channel, v2_driver):
    v2_driver(name="Amira"), v2_driver(name="Ben")
    order = receive_order(channel)
    first = Offer.objects.get(order=order, state=Offer.State.PENDING)
    # when the driver offered first declines
    offer_usecases.offer_decline(offer_id=first.pk, driver=first.driver)
    # then the second decision offers it to the other driver and records the decline
    second_decision = decisions(order)[-1]
    rows = {row["name"]: row for row in second_decision.data["candidates"]}
    decliner = first.driver.name
    other = ({"Amira", "Ben"} - {decliner}).pop()
    assert rows[other]["result"] == "offered" and rows[other]["rank"] == 1
    assert rows[decliner]["result"] == "skipped" and rows[decliner]["reason"] == "declined" and rows[decliner]["rank"] is None
    assert rows[decliner]["at"].startswith(timezone.now().strftime("%Y-%m-%d"))


def test_a_v1_assignment_while_offers_are_on_says_the_app_speaks_v1(channel):
    DriverFactory(name="Carla")  # never opened the v2 socket
    order = receive_order(channel)
    [decision] = decisions(order)
    assert decision.after == {"outcome": "assigned"}
    [row] = decision.data["candidates"]
    assert (row["name"], row["result"], row["reason"]) == ("Carla", "assigned", "app_speaks_v1")
    assert Order.objects.get(pk=order.pk).driver.name == "Carla"


def test_finding_nobody_is_recorded_once_not_at_every_retry_of_the_sweep(channel):
    from usecases.dispatching import assign_orders_due

    order = receive_order(channel)
    assign_orders_due(now=timezone.now() + timedelta(seconds=10))
    assign_orders_due(now=timezone.now() + timedelta(seconds=20))
    [decision] = decisions(order)
    assert decision.after == {"outcome": "no_candidates"} and decision.data["candidates"] == []


def test_the_record_stops_at_the_fan_out_plus_ten(channel, v2_driver):
    for n in range(15):
        v2_driver(name=f"Driver {n:02d}")
    order = receive_order(channel)
    [decision] = decisions(order)
    rows = decision.data["candidates"]
    assert len(rows) == 1 + 10
    assert [row["rank"] for row in rows] == list(range(1, 12))
    assert sum(row["result"] == "offered" for row in rows) == 1


def test_support_reads_the_decision_in_the_timeline_with_names_escaped(client, channel, v2_driver, staff_groups):
    from django.contrib.auth import get_user_model

    v2_driver(name="<script>alert(1)</script>Amira")
    order = receive_order(channel)
    from django.contrib.auth.models import Group

    support = get_user_model().objects.create_user("support-reader", password="x", is_staff=True)
    support.groups.add(Group.objects.get(name="support"))
    client.force_login(support)
    page = client.get(f"/support/orders/{order.pk}/").content.decode()
    assert "dispatch.decided" in page
    assert "1. &lt;script&gt;alert(1)&lt;/script&gt;Amira: offered" in page
    assert "<script>alert(1)</script>" not in page


def test_ops_read_the_decisions_on_the_orders_page_in_admin(admin_client, channel, v2_driver):
    v2_driver(name="<b>Amira</b>")
    order = receive_order(channel)
    page = admin_client.get(f"/admin/dispatch/order/{order.pk}/change/").content.decode()
    assert "Why this driver" in page
    assert "1. &lt;b&gt;Amira&lt;/b&gt;: offered" in page
