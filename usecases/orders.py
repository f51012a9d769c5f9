"""What happens to an order and everything that depends on it when it moves."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from audit.actors import SYSTEM, Actor
from dispatch import selectors as dispatch_selectors
from dispatch import services as lifecycle
from dispatch.after_commit import after_commit
from dispatch.errors import IllegalTransition
from dispatch.locks import order_locked
from dispatch.models import Driver, Order, Reassignment
from dispatch.services import OrderMove
from escalation import services as escalation_services
from eta import services as eta_services
from offers import services as offer_services
from offers.models import Offer
from proof import services as proof_services
from tracking import notify as tracking_notify
from vendure import services as vendure_services
from vendure.models import FulfillmentStep

S = Order.Status

# The step the shop is told of when an order reaches these statuses.
SHOP_STEP_FOR_STATUS = {S.PICKED_UP: FulfillmentStep.Step.SHIPPED, S.DELIVERED: FulfillmentStep.Step.DELIVERED}


def order_moved(move: OrderMove, now: datetime) -> None:
    """What follows every move of an order, in its transaction and in this order: escalations
    about the status it left resolve; the shop's report of a pickup or delivery is scheduled
    (a row the report sweep owns); a driver who got capacity back is tried for waiting orders
    and the order's open tracking pages are told, once the move committed."""
    escalation_services.escalations_resolve_for_order(order_id=move.order.pk, status=move.after, now=now)
    step = SHOP_STEP_FOR_STATUS.get(move.after)  # type: ignore[call-overload]
    if step is not None:
        vendure_services.fulfillment_step_schedule(order_id=move.order.pk, step=step)
    freed = move.freed_driver_id
    if freed is not None:
        after_commit(lambda: _waiting_orders_try_soon(freed))
    if move.after in (S.ASSIGNED, S.PICKED_UP, S.DELIVERED):
        eta_services.order_eta_record(order=move.order, now=now, driver=move.driver_after)  # what the customer is shown from now, kept
    order_id = move.order.pk
    after_commit(lambda: tracking_notify.order_changed_send(order_id))  # open tracking pages read the new state


def _waiting_orders_try_soon(driver_id: int) -> None:
    from usecases.tasks import assign_orders_for_driver

    if dispatch_selectors.orders_wait_in_zones_of(driver_id):  # a worker woken for nothing costs more than the question
        assign_orders_for_driver.delay(driver_id)


def _order_taken_back(move: OrderMove, reason: str) -> None:
    """The driver who lost the order: their accepted offer is taken back (so the next
    driver's accept can win) and they are told once the change committed."""
    driver_id = move.driver_before
    assert driver_id is not None
    offer_services.offer_take_back(order=move.order, driver_id=driver_id, reason=reason)
    order_id = move.order.pk

    def tell_driver() -> None:
        from offers.notify import order_taken_back_send

        order_taken_back_send(driver_id=driver_id, order_id=order_id, reason=reason)

    after_commit(tell_driver)


# --- The driver's progress ------------------------------------------------------------------


def order_pick_up(*, order_id: int, driver: Driver, now: datetime | None = None) -> Order:
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        move = lifecycle.order_pick_up(order_id=order_id, driver=driver, now=now)
        order_moved(move, now)
    return move.order


def order_deliver(
    *, order_id: int, driver: Driver, proof_note: str = "", proof_photo_ref: str = "", handover_code: str | None = None, now: datetime | None = None
) -> Order:
    """The driver delivered their order; against the customer's handover code when its shop or
    zone requires one (checked first: a wrong code is counted even though nothing else moves)."""
    now = now or timezone.now()
    proof_services.handover_code_check(order_id=order_id, driver=driver, code=handover_code, now=now)
    with transaction.atomic(durable=True):
        move = lifecycle.order_deliver(order_id=order_id, driver=driver, now=now, proof_note=proof_note, proof_photo_ref=proof_photo_ref)
        order_moved(move, now)
    return move.order


def order_fail(*, order_id: int, actor: Actor, reason: str, driver: Driver | None = None, now: datetime | None = None) -> Order:
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        move = lifecycle.order_fail(order_id=order_id, actor=actor, reason=reason, now=now, driver=driver)
        order_moved(move, now)
    return move.order


# --- Cancellation ---------------------------------------------------------------------------


def order_cancel_locked(*, order_id: int, actor: Actor, reason: str, now: datetime) -> Order:
    """Cancel inside the caller's transaction: the order's open offers are withdrawn with it."""
    move = lifecycle.order_cancel(order_id=order_id, actor=actor, reason=reason, now=now)
    if move.before in Order.WAITING_STATUSES:
        offer_services.offers_withdraw(order=move.order, reason=Offer.WithdrawnReason.ORDER_CANCELLED, now=now)
    order_moved(move, now)
    return move.order


def order_cancel(*, order_id: int, actor: Actor, reason: str, now: datetime | None = None) -> Order:
    """Cancel an order (by the shop or by ops); its driver, if any, gets the capacity back."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        return order_cancel_locked(order_id=order_id, actor=actor, reason=reason, now=now)


# --- Taking an order from its driver ---------------------------------------------------------


def order_take_back_locked(*, order_id: int, reason: str, actor: Actor, now: datetime, driver_id: int | None = None, dispatch_again: bool) -> Order:
    """Take an order not yet picked up from its driver, inside the caller's transaction: the
    reassignment on record, the driver's accepted offer taken back, the driver told after
    commit, and (with `dispatch_again`) the order offered or assigned to the next driver."""
    from usecases.dispatching import order_dispatch_locked

    move = lifecycle.order_take_back(order_id=order_id, reason=reason, actor=actor, now=now, driver_id=driver_id)
    _order_taken_back(move, reason)
    order_moved(move, now)
    if dispatch_again:
        order_dispatch_locked(order_id=order_id, now=now)
    return move.order


def order_reassign(*, order_id: int, reason: str, actor: Actor = SYSTEM, driver_id: int | None = None, now: datetime | None = None) -> Order:
    """Take an order not yet picked up from its driver and give it to the next one at once.

    `driver_id`, when the caller decided about a particular driver, makes it a compare-and-
    set on the holder: if someone else holds the order by now, it is refused."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        order_take_back_locked(order_id=order_id, reason=reason, actor=actor, now=now, driver_id=driver_id, dispatch_again=True)
    return Order.objects.get(pk=order_id)


def order_unassign(*, order_id: int, actor: Actor, now: datetime | None = None) -> Order:
    """Ops take an assigned order back from its driver: it goes to the next driver at once
    (the driver who lost it is not offered it again)."""
    return order_reassign(order_id=order_id, reason=Reassignment.Reason.UNASSIGNED_BY_OPS, actor=actor, now=now)


def order_assign(*, order_id: int, driver_id: int, actor: Actor, reason: str = "", now: datetime | None = None) -> Order:
    """Give a waiting order to a driver with free capacity; offers still out for it are withdrawn."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        move = lifecycle.order_assign(order_id=order_id, driver_id=driver_id, actor=actor, now=now, reason=reason)
        offer_services.offers_withdraw(order=move.order, reason=Offer.WithdrawnReason.ORDER_ASSIGNED, now=now)
        order_moved(move, now)
    return move.order


def order_assign_manually(*, order_id: int, driver_id: int, actor: Actor, now: datetime | None = None) -> Order:
    """Ops give an order to a chosen driver, taking it from its current driver if needed."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        order = order_locked(order_id)
        if order.status == S.ASSIGNED:
            if order.driver_id == driver_id:
                raise IllegalTransition(f"order {order_id}", "already assigned to this driver", S.ASSIGNED)
            order_take_back_locked(order_id=order_id, reason=Reassignment.Reason.REASSIGNED_BY_OPS, actor=actor, now=now, dispatch_again=False)
        move = lifecycle.order_assign(order_id=order_id, driver_id=driver_id, actor=actor, now=now, reason="manual")
        offer_services.offers_withdraw(order=move.order, reason=Offer.WithdrawnReason.ORDER_ASSIGNED, now=now)
        order_moved(move, now)
    return move.order


def order_limits_extend(*, order_id: int, minutes: int, actor: Actor, now: datetime | None = None) -> Order:
    """Ops give an order more time: no reassignment or escalation of it before then."""
    with transaction.atomic(durable=True):
        return lifecycle.order_limits_extend(order_id=order_id, minutes=minutes, actor=actor, now=now or timezone.now())
