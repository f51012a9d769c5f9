from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from availability.services import driver_position_update
from dispatch import selectors, services
from dispatch.errors import DriverUnavailable, IllegalTransition, NotFound, OverCapacity
from dispatch.models import Driver, Order
from dispatch.services import ORDER_TRANSITIONS
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import mark_unassigned, order_intake, receive_order
from usecases import dispatching
from usecases import intake as intake_usecases
from usecases import orders as order_usecases
from usecases.drivers import driver_go_offline, driver_go_online

pytestmark = pytest.mark.django_db
S = Order.Status


@pytest.fixture
def channel():
    ZoneFactory()
    return ShopChannelFactory()


def order_in(status, channel, actor):
    """An order brought to `status` through the services, the way production gets there."""
    driver = DriverFactory(capacity=3)
    order = receive_order(channel)
    assert order.status == S.ASSIGNED
    if status == S.RECEIVED:
        # RECEIVED is only seen between intake and dispatch; make one without a driver free.
        driver_go_offline(driver_id=driver.pk, actor=actor)
        order = intake_usecases.order_receive(channel=channel, intake=order_intake(), actor=actor)[0]
    elif status == S.UNASSIGNED:
        order_usecases.order_unassign(order_id=order.pk, actor=actor)
    elif status == S.PICKED_UP:
        order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    elif status in (S.DELIVERED, S.FAILED):
        order_usecases.order_pick_up(order_id=order.pk, driver=driver)
        if status == S.DELIVERED:
            order_usecases.order_deliver(order_id=order.pk, driver=driver)
        else:
            order_usecases.order_fail(order_id=order.pk, driver=driver, actor=actor, reason="nobody home")
    elif status == S.CANCELLED:
        order_usecases.order_cancel(order_id=order.pk, actor=actor, reason="test")
    order.refresh_from_db()
    assert order.status == status
    return order


def do_transition(order, to, actor):
    if to == S.ASSIGNED:
        spare = DriverFactory(capacity=1)
        return order_usecases.order_assign(order_id=order.pk, driver_id=spare.pk, actor=actor)
    if to == S.UNASSIGNED:
        return order_usecases.order_unassign(order_id=order.pk, actor=actor) if order.status != S.RECEIVED else mark_unassigned(order)
    if to == S.PICKED_UP:
        return order_usecases.order_pick_up(order_id=order.pk, driver=order.driver or DriverFactory())
    if to == S.DELIVERED:
        return order_usecases.order_deliver(order_id=order.pk, driver=order.driver or DriverFactory())
    if to == S.FAILED:
        return order_usecases.order_fail(order_id=order.pk, actor=actor, reason="test")
    if to == S.CANCELLED:
        return order_usecases.order_cancel(order_id=order.pk, actor=actor, reason="test")
    raise AssertionError(to)


ALL_PAIRS = [(a, b) for a in S.values for b in S.values if b != S.RECEIVED and a != b]


@pytest.mark.parametrize("current, requested", ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_every_transition_is_allowed_or_refused_as_the_table_says(channel, actor, current, requested):
    order = order_in(current, channel, actor)
    events_before = AuditEvent.objects.order_by("id").last().id
    if requested in ORDER_TRANSITIONS[current]:
        moved = do_transition(order, requested, actor)
        assert moved.status == requested
        assert AuditEvent.objects.filter(order_id=order.pk).latest("id").after["status"] == requested
    elif requested in (S.PICKED_UP, S.DELIVERED) and order.driver is None:
        # only the order's driver reports progress; to anyone else it does not exist
        with pytest.raises(NotFound):
            do_transition(order, requested, actor)
    else:
        with pytest.raises(IllegalTransition) as refused:
            do_transition(order, requested, actor)
        assert refused.value.detail == {"current": current, "requested": requested}
        assert current in refused.value.message and requested in refused.value.message
    if requested not in ORDER_TRANSITIONS[current]:
        order.refresh_from_db()
        assert order.status == current
        # a refusal writes nothing about the order
        assert not AuditEvent.objects.filter(order_id=order.pk, id__gt=events_before).exists()


def test_assignment_takes_capacity_and_delivery_gives_it_back(channel, actor):
    driver = DriverFactory(capacity=2)
    first, second = receive_order(channel), receive_order(channel)
    third = receive_order(channel)
    driver.refresh_from_db()
    assert (first.driver, second.driver, driver.active_order_count) == (driver, driver, 2)
    assert third.status == S.UNASSIGNED and third.waiting_reason == "no_candidates"
    order_usecases.order_pick_up(order_id=first.pk, driver=driver)
    order_usecases.order_deliver(order_id=first.pk, driver=driver, proof_note="front door", proof_photo_ref="photo-1")
    driver.refresh_from_db()
    assert driver.active_order_count == 1
    # the sweep now hands the waiting order to the freed driver
    assert dispatching.assign_orders_due() == 1
    third.refresh_from_db()
    assert third.driver == driver


def test_manual_assignment_over_capacity_is_refused_and_changes_nothing(channel, actor):
    busy = DriverFactory(capacity=1)
    receive_order(channel)
    waiting = receive_order(channel)
    with pytest.raises(OverCapacity):
        order_usecases.order_assign(order_id=waiting.pk, driver_id=busy.pk, actor=actor)
    waiting.refresh_from_db()
    busy.refresh_from_db()
    assert (waiting.status, waiting.driver, busy.active_order_count) == (S.UNASSIGNED, None, 1)


def test_manual_reassignment_moves_the_order_and_the_capacity(channel, actor):
    first = DriverFactory(capacity=1)
    order = receive_order(channel)
    second = DriverFactory(capacity=1)
    order_usecases.order_assign_manually(order_id=order.pk, driver_id=second.pk, actor=actor)
    order.refresh_from_db()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (order.driver, first.active_order_count, second.active_order_count) == (second, 0, 1)
    kinds = list(AuditEvent.objects.filter(order_id=order.pk).order_by("id").values_list("kind", flat=True))
    assert kinds == ["order.received", "order.assigned", "dispatch.decided", "order.unassigned", "order.assigned"]


def test_a_driver_cannot_touch_another_drivers_order(channel):
    owner = DriverFactory()
    order = receive_order(channel)
    stranger = DriverFactory()
    with pytest.raises(NotFound):
        order_usecases.order_pick_up(order_id=order.pk, driver=stranger)
    assert order.driver == owner


def test_candidates_are_nearest_first_then_idle_longest(channel):
    zone = ZoneFactory()
    now = timezone.now()
    far = DriverFactory()
    near = DriverFactory()
    idle_long = DriverFactory()
    idle_short = DriverFactory()
    Driver.objects.filter(pk=idle_long.pk).update(idle_since=now - timedelta(hours=2))
    Driver.objects.filter(pk=idle_short.pk).update(idle_since=now - timedelta(minutes=5))
    driver_position_update(driver_id=far.pk, lat=52.53, lon=13.41)
    driver_position_update(driver_id=near.pk, lat=52.5165, lon=13.378)
    # a stale position counts as unknown
    stale = DriverFactory()
    driver_position_update(driver_id=stale.pk, lat=52.5163, lon=13.3777, at=now - timedelta(hours=1))
    Driver.objects.filter(pk=stale.pk).update(idle_since=now - timedelta(minutes=1))
    ranked = selectors.candidate_drivers(zone, 52.5163, 13.3777)
    assert ranked == [near, far, idle_long, idle_short, stale]


def test_offline_and_full_drivers_and_other_zones_are_not_candidates(channel, actor):
    zone = ZoneFactory()
    other = ZoneFactory(slug="kreuzberg", name="Kreuzberg", area=None, postal_code_prefixes=["109"])
    offline = DriverFactory()
    driver_go_offline(driver_id=offline.pk, actor=actor)
    DriverFactory(zones=[other])
    full = DriverFactory(capacity=1)
    Driver.objects.filter(pk=full.pk).update(active_order_count=1)
    assert selectors.candidate_drivers(zone, 52.5, 13.4) == []


def test_going_online_is_audited_once_and_idempotent(actor):
    driver = DriverFactory(availability=Driver.Availability.OFFLINE)
    driver_go_online(driver_id=driver.pk, actor=actor)
    driver_go_online(driver_id=driver.pk, actor=actor)
    assert AuditEvent.objects.filter(kind="driver.online", driver_id=driver.pk).count() == 1


def test_an_older_position_never_overwrites_a_newer_one():
    driver = DriverFactory()
    now = timezone.now()
    driver_position_update(driver_id=driver.pk, lat=52.5, lon=13.4, at=now)
    driver_position_update(driver_id=driver.pk, lat=10.0, lon=10.0, at=now - timedelta(seconds=30))
    driver.refresh_from_db()
    assert (driver.last_lat, driver.last_lon) == (52.5, 13.4)


def test_staff_edit_of_a_driver_is_audited_and_never_overwrites_the_live_load(channel, actor):
    driver = DriverFactory(capacity=2)
    receive_order(channel)
    old_phone = driver.phone
    stale_copy = Driver.objects.get(pk=driver.pk)
    receive_order(channel)  # the load changes after the copy was read
    stale_copy.phone = "+49 30 999"
    services.reference_data_save(instance=stale_copy, changed_fields=["phone"], is_new=False, actor=actor)
    driver.refresh_from_db()
    assert (driver.phone, driver.active_order_count) == ("+49 30 999", 2)
    event = AuditEvent.objects.get(kind="driver.updated")
    assert (event.before, event.after) == ({"phone": old_phone}, {"phone": "+49 30 999"})
    stale_copy.capacity = 1
    with pytest.raises(OverCapacity):
        services.reference_data_save(instance=stale_copy, changed_fields=["capacity"], is_new=False, actor=actor)
    driver.refresh_from_db()
    assert driver.capacity == 2


@pytest.mark.django_db(transaction=True)
def test_audit_record_outside_a_transaction_is_a_programming_error():
    from audit.actors import SYSTEM
    from audit.services import audit_record

    with pytest.raises(RuntimeError):
        audit_record("x.happened", actor=SYSTEM, subject_type="x", subject_id=1)


def test_ops_cannot_give_an_order_to_a_deactivated_driver(actor, django_capture_on_commit_callbacks):
    ZoneFactory()
    order = receive_order(ShopChannelFactory(), code="DEACT-1")  # no driver yet: it waits
    gone = DriverFactory(availability=Driver.Availability.OFFLINE)
    gone.user.is_active = False
    gone.user.save()
    events = AuditEvent.objects.count()
    with pytest.raises(DriverUnavailable):
        order_usecases.order_assign_manually(order_id=order.pk, driver_id=gone.pk, actor=actor)
    order.refresh_from_db()
    gone.refresh_from_db()
    assert (order.status, order.driver_id, gone.active_order_count) == (Order.Status.UNASSIGNED, None, 0)
    assert AuditEvent.objects.count() == events
