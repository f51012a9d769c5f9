"""Dispatch decisions running side by side (several ASGI processes and workers): the lock order
the README promises means no two of them ever deadlock."""

import threading

import pytest
from django.db import connection

from audit.actors import Actor
from availability.services import driver_position_update
from offers import services as offer_services
from offers.models import Offer
from tests.factories import ShopChannelFactory, ZoneFactory
from tests.helpers import order_intake
from usecases import dispatching
from usecases import intake as intake_usecases

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("v2_offers_on")]


def test_two_decisions_ranking_two_drivers_in_opposite_orders_do_not_deadlock(v2_driver, monkeypatch):
    # given a zone with a fan-out of 2 and two shops far apart, each with a v2 driver near it:
    # an order of the west shop ranks W then E, one of the east shop E then W
    zone = ZoneFactory()
    zone.offer_fanout = 2
    zone.save()
    west = ShopChannelFactory(token="west", pickup_lat=52.5163, pickup_lon=13.3777)
    east = ShopChannelFactory(token="east", pickup_lat=52.5163, pickup_lon=13.4300)
    near_west, near_east = v2_driver(name="W"), v2_driver(name="E")
    driver_position_update(driver_id=near_west.pk, lat=52.5163, lon=13.3780)
    driver_position_update(driver_id=near_east.pk, lat=52.5163, lon=13.4297)
    orders = [intake_usecases.order_receive(channel=c, intake=order_intake(code=c.token), actor=Actor.system("t"))[0] for c in (west, east)]

    # when both orders are dispatched at once (two webhooks, or the sweep and a webhook), each
    # having made its first offer before the other makes its second
    insert = offer_services.row_insert_unless_conflict
    barrier = threading.Barrier(2, timeout=5)
    local = threading.local()

    def insert_then_wait_for_the_other(row):
        inserted = insert(row)
        if not getattr(local, "waited", False):
            local.waited = True
            try:
                barrier.wait()  # both decisions made their first offer
            except threading.BrokenBarrierError:
                pass
        return inserted

    monkeypatch.setattr(offer_services, "row_insert_unless_conflict", insert_then_wait_for_the_other)
    outcomes: list[object] = [None, None]

    def run(i, order_id):
        try:
            outcomes[i] = dispatching.order_dispatch(order_id=order_id)
        except Exception as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, o.pk)) for i, o in enumerate(orders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then both decisions commit: neither dies of a deadlock (a 500 to the shop's webhook, a
    # failed sweep); each order is offered to the one driver the other did not take first
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert Offer.objects.filter(state=Offer.State.PENDING).count() == 2
