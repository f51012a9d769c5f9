"""Automatic reassignment (v2_auto_reassign): a driver who goes offline or silent, or misses
the pickup, loses an order not yet picked up; it goes to the next driver at once, the driver
is told, and the trail says why. Off, the order stays (v1) and the pickup limit escalates it."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.errors import IllegalTransition
from dispatch.models import Driver, Order, Reassignment
from escalation.models import AlertKind, Escalation, EscalationPolicy
from offers.models import Offer
from offers.notify import driver_group
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from usecases import dispatching, reassignment
from usecases import drivers as driver_usecases
from usecases import orders as order_usecases

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
ME = Actor.system("test")


@pytest.fixture
def first_driver(ownership):
    """The driver who gets the order at T0; a second driver comes online afterwards."""
    ZoneFactory()
    return DriverFactory(name="First")


@pytest.fixture
def order(first_driver):
    with time_machine.travel(T0, tick=False):
        order = receive_order(ShopChannelFactory(), code="R-1")
    assert order.driver_id == first_driver.pk
    return order


def reassigned_event(order):
    return AuditEvent.objects.get(kind="order.reassigned", order_id=order.pk)


def test_a_driver_going_offline_loses_the_order_to_the_next_driver(order, first_driver, auto_reassign_on, django_capture_on_commit_callbacks, caplog):
    second = DriverFactory(name="Second")
    with caplog.at_level(logging.INFO, logger="offers.push"), django_capture_on_commit_callbacks(execute=True):
        driver_usecases.driver_go_offline(driver_id=first_driver.pk, actor=ME)
    order.refresh_from_db()
    assert (order.status, order.driver_id, order.reassign_count) == (Order.Status.ASSIGNED, second.pk, 1)
    event = reassigned_event(order)
    assert event.data == {"reason": "driver_offline", "from_driver": first_driver.pk}
    assert (event.before, event.after) == ({"status": "assigned", "driver": first_driver.pk}, {"status": "unassigned", "driver": None})
    assert Driver.objects.get(pk=first_driver.pk).active_order_count == 0
    assert Reassignment.objects.get(order=order).reason == "driver_offline"
    # Not connected: the driver is told by push.
    assert f"push to driver {first_driver.pk}: Order reassigned" in caplog.text


def test_the_driver_is_told_over_the_socket(order, first_driver, auto_reassign_on, django_capture_on_commit_callbacks):
    layer = get_channel_layer()
    channel_name = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(driver_group(first_driver.pk), channel_name)
    DriverFactory()
    with django_capture_on_commit_callbacks(execute=True):
        driver_usecases.driver_go_offline(driver_id=first_driver.pk, actor=ME)
    message = async_to_sync(layer.receive)(channel_name)
    assert message["frame"] == {"type": "order_taken_back", "order_id": order.pk, "code": "R-1", "reason": "driver_offline"}


def test_a_silent_driver_loses_the_order(order, first_driver, auto_reassign_on, v2_availability_on, django_capture_on_commit_callbacks):
    Driver.objects.filter(pk=first_driver.pk).update(v2_connected_at=T0, app_version="2.3.0", last_heartbeat_at=T0)
    second = DriverFactory()
    with django_capture_on_commit_callbacks(execute=True):
        assert driver_usecases.offline_silent_drivers_due() == 1
    order.refresh_from_db()
    assert order.driver_id == second.pk
    assert reassigned_event(order).data["reason"] == "driver_silent"


def test_a_missed_pickup_is_reassigned_at_the_limit_and_not_before(order, first_driver, auto_reassign_on, settings):
    second = DriverFactory()
    limit = settings.ESCALATION_DEFAULTS["pickup_limit_s"]
    assert reassignment.reassign_orders_due(now=T0 + timedelta(seconds=limit - 1)) == 0
    assert Order.objects.get(pk=order.pk).driver_id == first_driver.pk
    assert reassignment.reassign_orders_due(now=T0 + timedelta(seconds=limit)) == 1
    order.refresh_from_db()
    assert (order.driver_id, order.assigned_at) == (second.pk, T0 + timedelta(seconds=limit))
    assert reassigned_event(order).data["reason"] == "missed_pickup"
    # The driver who missed it is not given it back, even when they are the only one left.
    order_usecases.order_unassign(order_id=order.pk, actor=ME)
    Driver.objects.filter(pk=second.pk).update(availability="offline")
    dispatching.order_dispatch(order_id=order.pk)
    assert Order.objects.get(pk=order.pk).status == Order.Status.UNASSIGNED


def test_with_the_switch_off_the_order_stays_and_the_pickup_limit_escalates_it(order, first_driver, settings, django_capture_on_commit_callbacks):
    DriverFactory()
    with django_capture_on_commit_callbacks(execute=True):
        driver_usecases.driver_go_offline(driver_id=first_driver.pk, actor=ME)
    limit = settings.ESCALATION_DEFAULTS["pickup_limit_s"]
    reassignment.escalate_orders_due(now=T0 + timedelta(seconds=limit))
    order.refresh_from_db()
    assert (order.status, order.driver_id, order.reassign_count) == (Order.Status.ASSIGNED, first_driver.pk, 0)
    assert not AuditEvent.objects.filter(kind="order.reassigned").exists()
    assert Escalation.objects.get(order=order).trigger == AlertKind.PICKUP_OVERDUE


def test_a_driver_outside_the_rollout_share_keeps_the_order(order, first_driver, django_capture_on_commit_callbacks):
    from rollout.services import rollout_set
    from usecases.switches import switch_set

    switch_set(name="v2_auto_reassign", active=True, actor=ME)
    rollout_set(feature="v2_auto_reassign", percentage=0, actor=ME)
    DriverFactory()
    with django_capture_on_commit_callbacks(execute=True):
        driver_usecases.driver_go_offline(driver_id=first_driver.pk, actor=ME)
    assert Order.objects.get(pk=order.pk).driver_id == first_driver.pk


def test_after_the_last_allowed_reassignment_the_order_escalates_instead(order, first_driver, auto_reassign_on, settings):
    EscalationPolicy.objects.create(zone=order.zone, max_reassignments=1, pickup_limit_s=600)
    second = DriverFactory()
    reassignment.escalate_orders_due(now=T0 + timedelta(seconds=600))
    assert Order.objects.get(pk=order.pk).driver_id == second.pk
    DriverFactory()  # a third driver is free, but the order has used its reassignment
    later = T0 + timedelta(seconds=1200)
    reassignment.escalate_orders_due(now=later)
    reassignment.escalate_orders_due(now=later + timedelta(seconds=10))
    order.refresh_from_db()
    assert (order.driver_id, order.reassign_count) == (second.pk, 1)
    [escalation] = Escalation.objects.filter(order=order)
    assert escalation.trigger == AlertKind.REASSIGN_LIMIT
    assert escalation.detail == {"reassignments": 1, "reason": "missed_pickup", "driver": second.pk}


def test_a_picked_up_order_is_never_taken_back(order, first_driver, auto_reassign_on, settings, django_capture_on_commit_callbacks):
    DriverFactory()
    order_usecases.order_pick_up(order_id=order.pk, driver=first_driver)
    with django_capture_on_commit_callbacks(execute=True):
        driver_usecases.driver_go_offline(driver_id=first_driver.pk, actor=ME)
    reassignment.reassign_orders_due(now=T0 + timedelta(hours=5))
    assert Order.objects.get(pk=order.pk).driver_id == first_driver.pk
    with pytest.raises(IllegalTransition):
        order_usecases.order_reassign(order_id=order.pk, reason="by_ops", actor=ME)
    assert not AuditEvent.objects.filter(kind="order.reassigned").exists()


def test_with_offers_on_the_order_is_offered_to_the_next_v2_driver(
    order, first_driver, auto_reassign_on, v2_offers_on, v2_driver, django_capture_on_commit_callbacks
):
    second = v2_driver()
    with django_capture_on_commit_callbacks(execute=True):
        driver_usecases.driver_go_offline(driver_id=first_driver.pk, actor=ME)
    order.refresh_from_db()
    assert (order.status, order.driver_id) == (Order.Status.UNASSIGNED, None)
    assert Offer.objects.get(order=order).driver_id == second.pk


def test_the_reassignment_sweep_catches_up_on_offline_drivers_the_signal_missed(order, first_driver, auto_reassign_on, django_capture_on_commit_callbacks):
    second = DriverFactory()
    with django_capture_on_commit_callbacks(execute=False):  # the broker was down: no task ran
        driver_usecases.driver_go_offline(driver_id=first_driver.pk, actor=ME)
    assert Order.objects.get(pk=order.pk).driver_id == first_driver.pk
    assert reassignment.reassign_orders_due(now=T0 + timedelta(seconds=1)) == 1
    assert reassignment.reassign_orders_due(now=T0 + timedelta(seconds=2)) == 0
    assert Order.objects.get(pk=order.pk).driver_id == second.pk
    assert reassigned_event(order).data["reason"] == "driver_offline"
