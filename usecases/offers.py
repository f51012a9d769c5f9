"""Answers to offers and their lapse, each with what follows for the order."""

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_batched
from dispatch import services as lifecycle
from dispatch.clock import database_now
from dispatch.locks import order_locked, orders_lock
from dispatch.models import Driver, Order
from offers import services as offer_services
from offers.models import Offer
from rollout.models import Feature
from rollout.selectors import switch_is_on
from usecases.dispatching import order_dispatch_locked
from usecases.orders import order_moved

A = Offer.State.ACCEPTED


def offer_accept(*, offer_id: int, driver: Driver, now: datetime | None = None) -> Offer:
    """Accept: the order is assigned to this driver and its rival offers are withdrawn as
    taken. Accepting again returns the same offer.

    Rows are taken in the documented order: the order's lock, the driver's capacity, then the
    offers. The losers of a race leave on a read, before the lock, once the winner committed;
    those who read before that find the order taken once they hold its lock. An offer that
    lapsed or was withdrawn while the order still waits fails its compare-and-set last, and
    the whole accept rolls back.
    """
    now = now or timezone.now()
    offer = offer_services.driver_offer(offer_id=offer_id, driver=driver)
    if not offer_services.offer_answer_check(offer, answer=A, now=now):
        return offer
    with transaction.atomic(durable=True), audit_batched():  # assigned, accepted, rivals withdrawn: one INSERT
        order = order_locked(offer.order_id)
        if order.status not in Order.WAITING_STATUSES:  # someone won it while we waited for the lock
            offer.refresh_from_db(fields=["state", "withdrawn_reason", "answered_at"])
            if not offer_services.offer_answer_check(offer, answer=A, now=now):
                return offer
        move = lifecycle.order_assign(
            order_id=order.pk, driver_id=driver.pk, actor=lifecycle.driver_actor(driver), now=now, reason="offer_accepted", locked=order
        )
        offer_services.offer_accept(offer=offer, order=order, driver=driver, now=now)  # its rivals withdrawn as taken
        order_moved(move, now)
    offer.order = order
    return offer


def offer_decline(*, offer_id: int, driver: Driver, reason: str = "", now: datetime | None = None) -> Offer:
    """Decline: the order moves on to the next candidate. Declining again returns the same offer."""
    now = now or timezone.now()
    offer = offer_services.driver_offer(offer_id=offer_id, driver=driver)
    if not offer_services.offer_answer_check(offer, answer=Offer.State.DECLINED, now=now):
        return offer
    with transaction.atomic(durable=True):
        order = order_locked(offer.order_id)
        offer.refresh_from_db(fields=["state", "withdrawn_reason", "answered_at", "decline_reason"])
        if not offer_services.offer_answer_check(offer, answer=Offer.State.DECLINED, now=now):
            return offer
        offer_services.offer_decline(offer=offer, order=order, driver=driver, reason=reason, now=now)
        _order_offer_next(order, now)
    offer.order = order
    return offer


def _order_offer_next(order: Order, now: datetime) -> None:
    """After an answer or a lapse: once no offer is out, offer the order to the next driver
    (the decision itself leaves an order alone while an offer is out)."""
    order_dispatch_locked(order_id=order.pk, now=now, locked=order)


def expire_offers_due(*, now: datetime | None = None, limit: int | None = None, batch: int | None = None) -> int:
    """The expiry sweep: lapse pending offers past their deadline (by the database's clock)
    and move their orders on, oldest deadline first.

    Set-based: a batch of orders is locked with SKIP LOCKED (an answer in flight is never
    overtaken, and two sweeps split the work), their lapsed offers end in one UPDATE with one
    audit INSERT, then each order is offered on; each batch commits on its own, so the first
    drivers in line hear of their new offers while later batches are still being worked.
    Safe to run twice and after missed ticks. Returns how many offers lapsed.
    """
    now = now or database_now()
    limit = limit or settings.DISPATCH_EXPIRY_SWEEP_LIMIT
    batch = batch or settings.DISPATCH_EXPIRY_SWEEP_BATCH
    order_ids = list(dict.fromkeys(order_id for _, order_id in offer_services.offers_due_to_expire(now=now, limit=limit)))
    expired = 0
    for start in range(0, len(order_ids), batch):
        chunk = order_ids[start : start + batch]
        with transaction.atomic(durable=True):
            orders = orders_lock(chunk, skip_locked=True)  # held ones are left for the next tick
            if not orders:
                continue
            lapsed = offer_services.offers_expire(orders=orders, now=now)
            expired += len(lapsed)
            moved_on = {order_id for _, order_id, _, _ in lapsed}
            for order_id in chunk:  # oldest deadline first
                if order_id in moved_on:
                    _order_offer_next(orders[order_id], now)
    return expired


def offers_switch_off(*, now: datetime | None = None) -> int:
    """Offers were switched off: withdraw every pending offer and assign those orders the v1 way.

    The switch is read again for each order, under its share lock: a task that runs late, after
    ops turned offers back on, withdraws nothing."""
    now = now or database_now()
    order_ids = sorted(set(Offer.objects.filter(state=Offer.State.PENDING).values_list("order_id", flat=True)))
    handled = 0
    for order_id in order_ids:
        with transaction.atomic(durable=True):
            order = order_locked(order_id)
            if switch_is_on(Feature.OFFERS, hold_until_commit=True):
                return handled
            offer_services.offers_withdraw(order=order, reason=Offer.WithdrawnReason.SWITCHED_OFF, now=now)
            order_dispatch_locked(order_id=order_id, now=now, locked=order)
            handled += 1
    return handled


def offers_switched_off_due(*, now: datetime | None = None) -> int:
    """Sweep: while offers are switched off, no offer stays pending. The withdrawal enqueued
    when the switch was turned off is only the fast path; a lost task, a dead worker or an
    offer made in a race with the flip is caught on the next tick of the expiry sweep."""
    if switch_is_on(Feature.OFFERS) or not Offer.objects.filter(state=Offer.State.PENDING).exists():
        return 0
    return offers_switch_off(now=now)


def driver_offers_withdraw(*, driver_id: int, now: datetime | None = None) -> int:
    """The driver went offline or on a break: withdraw their pending offer and move its order on."""
    now = now or timezone.now()
    withdrawn = 0
    for order_id in list(Offer.objects.filter(driver_id=driver_id, state=Offer.State.PENDING).values_list("order_id", flat=True)):
        with transaction.atomic(durable=True):
            order = order_locked(order_id)
            if offer_services.offers_withdraw(order=order, reason=Offer.WithdrawnReason.DRIVER_UNAVAILABLE, now=now, driver_id=driver_id):
                _order_offer_next(order, now)
                withdrawn += 1
    return withdrawn
