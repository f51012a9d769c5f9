"""Invariants 1 and 2 under real concurrency: threads with their own PostgreSQL connections."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.errors import DispatchError
from dispatch.models import Driver, Order
from offers.errors import OfferExpired, OfferTaken, OfferWithdrawn
from offers.models import Offer
from tests.factories import ShopChannelFactory, ZoneFactory
from tests.helpers import order_intake
from usecases import dispatching
from usecases import intake as intake_usecases
from usecases import offers as offer_usecases
from usecases import orders as order_usecases

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("v2_offers_on")]


def race(*calls):
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            outcomes[i] = call()
        except DispatchError as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def new_order(channel, code="R"):
    return intake_usecases.order_receive(channel=channel, intake=order_intake(code=code), actor=Actor.system("test"))[0]


def test_twenty_drivers_racing_to_accept_one_order(v2_driver):
    zone = ZoneFactory()
    zone.offer_fanout = 20
    zone.save()
    channel = ShopChannelFactory()
    drivers = [v2_driver() for _ in range(20)]
    order = new_order(channel)
    dispatching.order_dispatch(order_id=order.pk)
    offers = list(Offer.objects.filter(order=order, state=Offer.State.PENDING).select_related("driver"))
    assert len(offers) == 20
    outcomes = race(*[lambda o=o: offer_usecases.offer_accept(offer_id=o.pk, driver=o.driver) for o in offers])
    winners = [o for o in outcomes if isinstance(o, Offer)]
    taken = [o for o in outcomes if isinstance(o, OfferTaken)]
    assert len(winners) == 1 and len(taken) == 19, outcomes
    order.refresh_from_db()
    assert order.status == Order.Status.ASSIGNED and order.driver_id == winners[0].driver_id
    assert sum(Driver.objects.filter(pk__in=[d.pk for d in drivers]).values_list("active_order_count", flat=True)) == 1
    assert Offer.objects.filter(order=order, state=Offer.State.ACCEPTED).count() == 1
    assert AuditEvent.objects.filter(kind="order.assigned", order_id=order.pk).count() == 1
    assert AuditEvent.objects.filter(kind="offer.accepted", order_id=order.pk).count() == 1
    assert AuditEvent.objects.filter(kind="offer.withdrawn", order_id=order.pk).count() == 19


@pytest.mark.parametrize("round_", range(15))
def test_accept_racing_expiry_never_assigns_an_expired_offer(v2_driver, round_):
    ZoneFactory()
    channel = ShopChannelFactory()
    driver = v2_driver()
    order = new_order(channel)
    # the offer's deadline is passing right now
    dispatching.order_dispatch(order_id=order.pk, now=timezone.now() - timedelta(seconds=30))
    offer = Offer.objects.get(order=order)
    accept, swept = race(lambda: offer_usecases.offer_accept(offer_id=offer.pk, driver=driver), offer_usecases.expire_offers_due)
    offer_usecases.expire_offers_due()  # the next tick: the sweep skips an order an answer holds locked
    offer.refresh_from_db()
    order.refresh_from_db()
    if offer.state == Offer.State.ACCEPTED:
        assert order.driver_id == driver.pk and isinstance(accept, Offer)
    else:
        assert offer.state == Offer.State.EXPIRED and isinstance(accept, OfferExpired)
        assert order.driver_id is None
    assert Driver.objects.get(pk=driver.pk).active_order_count == (1 if order.status == Order.Status.ASSIGNED else 0)


@pytest.mark.parametrize("round_", range(15))
def test_accept_racing_cancellation_never_leaves_an_accepted_offer_after_the_cancel(v2_driver, round_):
    ZoneFactory()
    channel = ShopChannelFactory()
    driver = v2_driver()
    order = new_order(channel)
    dispatching.order_dispatch(order_id=order.pk)
    offer = Offer.objects.get(order=order)
    accept, cancel = race(
        lambda: offer_usecases.offer_accept(offer_id=offer.pk, driver=driver),
        lambda: order_usecases.order_cancel(order_id=order.pk, actor=Actor.system("shop"), reason="race"),
    )
    offer.refresh_from_db()
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    if offer.state == Offer.State.ACCEPTED:
        # the accept won: it committed before the cancellation, which then freed the driver
        accepted = AuditEvent.objects.get(kind="offer.accepted", order_id=order.pk)
        cancelled = AuditEvent.objects.get(kind="order.cancelled", order_id=order.pk)
        assert accepted.pk < cancelled.pk and cancelled.before == {"status": "assigned", "driver": driver.pk}
    else:
        assert offer.state == Offer.State.WITHDRAWN and isinstance(accept, OfferWithdrawn)
    assert Driver.objects.get(pk=driver.pk).active_order_count == 0


def test_two_expiry_sweeps_at_once_expire_each_offer_once(v2_driver):
    ZoneFactory()
    channel = ShopChannelFactory()
    for _ in range(10):
        v2_driver()
    orders = [new_order(channel, code=f"S{i}") for i in range(10)]
    for order in orders:
        dispatching.order_dispatch(order_id=order.pk, now=timezone.now() - timedelta(seconds=60))
    assert Offer.objects.filter(state=Offer.State.PENDING).count() == 10
    first, second = race(offer_usecases.expire_offers_due, offer_usecases.expire_offers_due)
    assert AuditEvent.objects.filter(kind="offer.expired").count() == Offer.objects.filter(state=Offer.State.EXPIRED).count()
    assert first + second == Offer.objects.filter(state=Offer.State.EXPIRED).count() >= 1
    # no driver ever holds two pending offers
    pending_per_driver = list(Offer.objects.filter(state=Offer.State.PENDING).values_list("driver_id", flat=True))
    assert len(pending_per_driver) == len(set(pending_per_driver))
