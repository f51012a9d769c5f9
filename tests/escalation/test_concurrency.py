"""Invariant 5 under concurrency and downtime: two sweeps at once open each escalation once, and
after the sweeps were stopped for longer than every limit, each due expiry, reassignment and
escalation happens once when they run again (on the database's clock, with real time)."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from dispatch.models import Driver, Order
from escalation.models import AlertKind, Escalation, EscalationPolicy, Notification
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from usecases import reassignment

pytestmark = pytest.mark.django_db(transaction=True)
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def run_at_once(*calls, rounds=1):
    """Run each call in its own thread (own database connection), all released together."""
    barrier = threading.Barrier(len(calls))
    errors = []

    def run(call):
        try:
            barrier.wait()
            for _ in range(rounds):
                call()
        except Exception as exc:  # reported to the test, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors


def test_two_sweeps_at_once_open_each_escalation_once(ownership):
    ZoneFactory()
    channel = ShopChannelFactory()
    with time_machine.travel(T0, tick=False):
        orders = [receive_order(channel, code=f"TWO-{n}") for n in range(15)]
    later = T0 + timedelta(hours=1)
    run_at_once(lambda: reassignment.escalate_orders_due(now=later), lambda: reassignment.escalate_orders_due(now=later), rounds=2)
    for order in orders:
        triggers = sorted(Escalation.objects.filter(order=order).values_list("trigger", flat=True))
        assert triggers == [AlertKind.ORDER_NO_CANDIDATES, AlertKind.ORDER_UNASSIGNED]
    assert AuditEvent.objects.filter(kind="escalation.opened").count() == 30
    assert Notification.objects.filter(event="opened").count() == 30


def test_after_downtime_every_due_expiry_reassignment_and_escalation_happens_once(ownership, v2_offers_on, auto_reassign_on):
    from escalation.tasks import send_notifications_due
    from offers.models import Offer
    from usecases.tasks import assign_orders_due, escalate_orders_due, expire_offers_due

    EscalationPolicy.objects.filter(is_default=True).update(unassigned_limit_s=2, no_candidates_limit_s=2, pickup_limit_s=3)
    channel = ShopChannelFactory()
    offered_zone = ZoneFactory(slug="offered", name="Offered", area=None, postal_code_prefixes=["201"])
    pickup_zone = ZoneFactory(slug="pickup", name="Pickup", area=None, postal_code_prefixes=["202"])
    ZoneFactory(slug="empty", name="Empty", area=None, postal_code_prefixes=["203"])
    from audit.actors import Actor
    from dispatch.services import reference_data_save

    offered_zone.offer_timeout_s = 5
    reference_data_save(instance=offered_zone, changed_fields=["offer_timeout_s"], is_new=False, actor=Actor.system("test"))
    v2 = DriverFactory(zones=[offered_zone], v2_connected_at=timezone.now(), app_version="2.3.0", last_heartbeat_at=timezone.now() + timedelta(hours=1))
    slow = DriverFactory(zones=[pickup_zone])
    offered = receive_order(channel, code="DOWN-OFFERED", postal_code="20100", lat=None, lon=None)
    missed = receive_order(channel, code="DOWN-PICKUP", postal_code="20200", lat=None, lon=None)
    waiting = receive_order(channel, code="DOWN-WAITING", postal_code="20300", lat=None, lon=None)
    spare = DriverFactory(zones=[pickup_zone], availability=Driver.Availability.OFFLINE)
    Driver.objects.filter(pk=spare.pk).update(availability=Driver.Availability.AVAILABLE)
    assert Offer.objects.get(order=offered).driver_id == v2.pk
    assert (missed.status, missed.driver_id) == (Order.Status.ASSIGNED, slow.pk)
    assert waiting.status == Order.Status.UNASSIGNED

    time.sleep(6)  # every sweep stopped (worker, beat and broker down) past every limit

    sweeps = [expire_offers_due.apply, assign_orders_due.apply, escalate_orders_due.apply, send_notifications_due.apply]
    run_at_once(*[lambda sweeps=sweeps: [sweep() for sweep in sweeps]] * 2, rounds=2)

    assert Offer.objects.get(order=offered).state == Offer.State.EXPIRED
    assert AuditEvent.objects.filter(kind="offer.expired").count() == 1
    assert AuditEvent.objects.filter(kind="order.reassigned", order_id=missed.pk).count() == 1
    assert Order.objects.get(pk=missed.pk).driver_id == spare.pk
    assert sorted(Escalation.objects.filter(order=waiting).values_list("trigger", flat=True)) == [AlertKind.ORDER_NO_CANDIDATES, AlertKind.ORDER_UNASSIGNED]
    assert not Escalation.objects.filter(order=missed).exists()  # repaired by reassignment, nobody paged
    # The lapsed offer's order started waiting when its offer lapsed: not due yet, and never twice.
    assert Escalation.objects.filter(order=offered).count() == len(set(Escalation.objects.filter(order=offered).values_list("trigger", "episode_started_at")))
    opened = Escalation.objects.count()
    assert AuditEvent.objects.filter(kind="escalation.opened").count() == opened
    assert Notification.objects.filter(event="opened").count() == opened
    assert Notification.objects.exclude(state="sent").count() == 0
    assert AuditEvent.objects.filter(kind="notification.sent").count() == Notification.objects.count()


def test_two_reassignment_sweeps_at_once_take_each_order_from_its_driver_once(ownership, auto_reassign_on):
    """The sweep that comes second finds the order with its new driver and leaves it there."""
    zone = ZoneFactory()
    channel = ShopChannelFactory()
    slow = [DriverFactory(zones=[zone]) for _ in range(8)]
    with time_machine.travel(T0, tick=False):
        orders = [receive_order(channel, code=f"RACE-{n}") for n in range(8)]
    assert {o.driver_id for o in orders} == {d.pk for d in slow}
    spares = [DriverFactory(zones=[zone]) for _ in range(8)]
    later = T0 + timedelta(hours=1)
    run_at_once(lambda: reassignment.reassign_orders_due(now=later), lambda: reassignment.reassign_orders_due(now=later), rounds=3)
    for order in orders:
        assert AuditEvent.objects.filter(kind="order.reassigned", order_id=order.pk).count() == 1
        assert Order.objects.get(pk=order.pk).driver_id in {d.pk for d in spares}
