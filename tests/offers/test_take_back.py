"""An order taken back from a driver who had accepted its offer can be accepted again.

The accepted offer of the driver who lost the order leaves the `accepted` state in the same
transaction as the take-back (by the sweep, by ops unassigning or reassigning by hand), so the
database's "one accepted offer per order" still holds and the next driver's accept wins.
"""

import pytest
from django.utils import timezone

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.models import Order, Reassignment
from offers.models import Offer
from tests.factories import ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from usecases import dispatching
from usecases import drivers as driver_usecases
from usecases import offers as offer_usecases
from usecases import orders as order_usecases

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("v2_offers_on")]
OPS = Actor.system("ops-test")


@pytest.fixture
def accepted(v2_driver, django_capture_on_commit_callbacks):
    """Driver X accepted the order's offer; driver Y is online and speaks v2 too (offline until needed)."""
    ZoneFactory()
    first = v2_driver(name="X")
    order = receive_order(ShopChannelFactory(), code="TB-1")
    offer = Offer.objects.get(order=order, driver=first)
    with django_capture_on_commit_callbacks(execute=True):
        offer_usecases.offer_accept(offer_id=offer.pk, driver=first)
    second = v2_driver(name="Y")
    return order, first, offer, second


def _accept_next_offer(order, driver, capture):
    offer = Offer.objects.get(order=order, driver=driver, state=Offer.State.PENDING)
    with capture(execute=True):
        return offer_usecases.offer_accept(offer_id=offer.pk, driver=driver)


def test_an_order_taken_back_by_the_sweep_is_accepted_by_the_next_driver(accepted, auto_reassign_on, django_capture_on_commit_callbacks):
    order, first, first_offer, second = accepted
    with django_capture_on_commit_callbacks(execute=True):
        driver_usecases.driver_go_offline(driver_id=first.pk, actor=OPS)
    first_offer.refresh_from_db()
    assert first_offer.state == Offer.State.TAKEN_BACK
    event = AuditEvent.objects.get(kind="offer.taken_back", subject_id=str(first_offer.pk))
    assert (event.before, event.after, event.data) == ({"state": "accepted"}, {"state": "taken_back"}, {"reason": "driver_offline"})

    won = _accept_next_offer(order, second, django_capture_on_commit_callbacks)

    order.refresh_from_db()
    assert won.state == Offer.State.ACCEPTED
    assert (order.status, order.driver_id) == (Order.Status.ASSIGNED, second.pk)
    assert Reassignment.objects.filter(order=order, driver=first).exists()


@pytest.mark.parametrize("how", ["unassign", "reassign_by_hand"])
def test_an_order_taken_back_by_ops_is_accepted_by_the_next_driver(accepted, how, django_capture_on_commit_callbacks):
    order, first, first_offer, second = accepted
    with django_capture_on_commit_callbacks(execute=True):
        if how == "unassign":
            order_usecases.order_unassign(order_id=order.pk, actor=OPS)
            dispatching.order_dispatch(order_id=order.pk)
        else:
            order_usecases.order_reassign(order_id=order.pk, reason="reassigned_by_ops", actor=OPS)
    first_offer.refresh_from_db()
    assert first_offer.state == Offer.State.TAKEN_BACK

    won = _accept_next_offer(order, second, django_capture_on_commit_callbacks)

    order.refresh_from_db()
    assert won.state == Offer.State.ACCEPTED and (order.status, order.driver_id) == (Order.Status.ASSIGNED, second.pk)


def test_ops_giving_the_order_to_a_chosen_driver_takes_back_the_accepted_offer(accepted, django_capture_on_commit_callbacks):
    order, first, first_offer, second = accepted
    with django_capture_on_commit_callbacks(execute=True):
        order_usecases.order_assign_manually(order_id=order.pk, driver_id=second.pk, actor=OPS, now=timezone.now())
    first_offer.refresh_from_db()
    order.refresh_from_db()
    assert first_offer.state == Offer.State.TAKEN_BACK
    assert (order.status, order.driver_id) == (Order.Status.ASSIGNED, second.pk)


def test_a_picked_up_order_keeps_its_accepted_offer(accepted, django_capture_on_commit_callbacks):
    order, first, first_offer, _ = accepted
    with django_capture_on_commit_callbacks(execute=True):
        order_usecases.order_pick_up(order_id=order.pk, driver=first)
        order_usecases.order_deliver(order_id=order.pk, driver=first)
    first_offer.refresh_from_db()
    assert first_offer.state == Offer.State.ACCEPTED


@pytest.mark.django_db(transaction=True)
def test_the_migration_frees_orders_stuck_before_the_fix(v2_driver, django_capture_on_commit_callbacks):
    """Orders taken back before the fix kept their former driver's accepted offer; the data
    migration takes those offers back, so the order can be accepted again."""
    from django.core.management import call_command

    from rollout.services import rollout_set
    from usecases.switches import switch_set

    switch_set(name="v2_offers", active=True, actor=OPS)
    rollout_set(feature="v2_offers", percentage=100, actor=OPS)
    ZoneFactory()
    first = v2_driver(name="X")
    order = receive_order(ShopChannelFactory(), code="STUCK-1")
    offer = Offer.objects.get(order=order, driver=first)
    offer_usecases.offer_accept(offer_id=offer.pk, driver=first)
    # as the old code left it: the order waiting again, the offer still accepted
    Order.objects.filter(pk=order.pk).update(status=Order.Status.UNASSIGNED, driver=None)
    kept = Offer.objects.create(order=order, driver=v2_driver(name="Y"), state=Offer.State.DECLINED, created_at=offer.created_at, expires_at=offer.expires_at)

    call_command("migrate", "offers", "0005", verbosity=0)
    call_command("migrate", "offers", verbosity=0)

    offer.refresh_from_db()
    kept.refresh_from_db()
    assert (offer.state, kept.state) == (Offer.State.TAKEN_BACK, Offer.State.DECLINED)
    assert AuditEvent.objects.get(kind="offer.taken_back", subject_id=str(offer.pk)).data == {"reason": "repaired_after_take_back"}
