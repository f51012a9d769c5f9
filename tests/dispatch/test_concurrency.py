"""Invariant 2 under real concurrency: threads with their own PostgreSQL connections."""

import threading

import pytest
from django.db import connection
from django.db.models import F
from django.test import Client

from audit.models import AuditEvent
from dispatch import services
from dispatch.models import Driver, Order
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import order_intake, ready_event
from usecases import dispatching
from usecases import intake as intake_usecases
from usecases import orders as order_usecases
from vendure import sample_payloads

pytestmark = pytest.mark.django_db(transaction=True)


def run_in_threads(work, count):
    barrier = threading.Barrier(count)
    errors = []

    def runner(i):
        try:
            barrier.wait()
            work(i)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_fifty_orders_at_once_for_five_drivers_of_capacity_two():
    # given 5 drivers of capacity 2 in one zone
    ZoneFactory()
    channel = ShopChannelFactory()
    drivers = [DriverFactory(capacity=2) for _ in range(5)]
    events = [ready_event() for _ in range(50)]
    statuses = []

    def deliver_webhook(i):
        raw, headers = sample_payloads.signed_request(channel.token, channel.webhook_secret, events[i])
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k != "Content-Type"}
        statuses.append(Client().post("/webhooks/vendure/", data=raw, content_type="application/json", **extra).status_code)

    # when 50 orders arrive concurrently
    errors = run_in_threads(deliver_webhook, 50)
    # then nobody is over capacity, 10 are assigned and 40 wait
    assert errors == [] and statuses == [200] * 50
    assert not Driver.objects.filter(active_order_count__gt=F("capacity")).exists()
    assert Order.objects.filter(status=Order.Status.ASSIGNED).count() == 10
    assert Order.objects.filter(status=Order.Status.UNASSIGNED).count() == 40
    for driver in drivers:
        assert Order.objects.filter(driver=driver, status__in=Order.ACTIVE_STATUSES).count() == 2
    # and as drivers deliver, the sweep (two at once) hands out the rest, never over capacity
    for _ in range(4):
        for order in Order.objects.filter(status=Order.Status.ASSIGNED).select_related("driver"):
            order_usecases.order_pick_up(order_id=order.pk, driver=order.driver)
            order_usecases.order_deliver(order_id=order.pk, driver=order.driver)
        run_in_threads(lambda i: dispatching.assign_orders_due(), 2)
        assert not Driver.objects.filter(active_order_count__gt=F("capacity")).exists()
        for driver in Driver.objects.all():
            held = Order.objects.filter(driver=driver, status__in=Order.ACTIVE_STATUSES).count()
            assert held == driver.active_order_count <= driver.capacity
    assert Order.objects.filter(status=Order.Status.DELIVERED).count() == 40
    assert Order.objects.filter(status=Order.Status.ASSIGNED).count() == 10
    # every order was assigned exactly as often as the audit trail says
    assert AuditEvent.objects.filter(kind="order.assigned").count() == 50


def test_two_workers_racing_to_assign_one_order_to_different_drivers():
    ZoneFactory()
    channel = ShopChannelFactory()
    order = intake_usecases.order_receive(
        channel=channel,
        intake=order_intake(code="RACE"),
        actor=services.SYSTEM,
    )[0]
    drivers = [DriverFactory() for _ in range(8)]
    won = []

    def assign(i):
        try:
            won.append(order_usecases.order_assign(order_id=order.pk, driver_id=drivers[i].pk, actor=services.SYSTEM))
        except services.IllegalTransition:
            pass

    assert run_in_threads(assign, 8) == []
    assert len(won) == 1
    assert sum(Driver.objects.values_list("active_order_count", flat=True)) == 1
    assert AuditEvent.objects.filter(kind="order.assigned").count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_assignment_waiting_on_a_driver_being_deactivated_is_refused():
    """Ops deactivate a driver while a dispatch is about to give them an order: whichever way
    the two interleave, a deactivated driver ends up holding nothing new."""
    import time

    from django.db import transaction

    from audit.actors import Actor
    from dispatch.errors import DriverUnavailable
    from tests.helpers import receive_order

    ZoneFactory()
    order = receive_order(ShopChannelFactory(), code="RACE-DEACT")  # nobody online: it waits
    driver = DriverFactory()
    outcome = []

    def deactivate():
        try:
            with transaction.atomic():
                user = driver.user
                user.is_active = False
                user.save()  # takes the driver offline: the driver's row is held until commit
                time.sleep(0.6)
        finally:
            connection.close()

    def assign():
        try:
            order_usecases.order_assign(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("race"))
            outcome.append("assigned")
        except DriverUnavailable:
            outcome.append("refused")
        finally:
            connection.close()

    deactivating = threading.Thread(target=deactivate)
    deactivating.start()
    time.sleep(0.2)
    assigning = threading.Thread(target=assign)
    assigning.start()
    deactivating.join(10)
    assigning.join(10)
    order.refresh_from_db()
    assert outcome == ["refused"]
    assert (order.status, order.driver_id) == (Order.Status.UNASSIGNED, None)
    assert Driver.objects.get(pk=driver.pk).active_order_count == 0
