"""The dispatch decision: who gets a waiting order, by offer (v2) or directly (v1)."""

from collections.abc import Callable, Iterator
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.actors import SYSTEM
from dispatch import selectors
from dispatch import services as lifecycle
from dispatch.clock import database_now
from dispatch.errors import DriverBusy, DriverUnavailable, IllegalTransition, OverCapacity
from dispatch.locks import driver_lock_unless_held, order_lock
from dispatch.models import Driver, Order
from offers import services as offer_services
from usecases.decision_trace import TRACE_EXTRA_CANDIDATES, DecisionTrace
from usecases.orders import order_moved

S = Order.Status


def order_dispatch(*, order_id: int, now: datetime | None = None) -> Order | None:
    """Find a driver for a waiting order; returns the order when it was assigned directly."""
    with transaction.atomic(durable=True):
        return order_dispatch_locked(order_id=order_id, now=now or timezone.now())


def order_dispatch_locked(*, order_id: int, now: datetime, locked: Order | None = None, fresh: bool = False) -> Order | None:
    """The decision, inside the caller's transaction, under the order's lock (two dispatchers
    never put out offers for one order side by side).

    Candidates are taken best first. Each one is decided for on its own: a driver for whom v2
    offers are on (switch, rollout share, app) is offered the order, up to the zone's fan-out;
    otherwise, while no offer is out, the driver is assigned directly (v1). A driver who filled
    up meanwhile is skipped. An order that finds nobody is marked unassigned once (a rerun of
    the sweep writes nothing new). What the decision saw is recorded with it (`DecisionTrace`).
    Returns the order when it was assigned directly. `locked` is the order's row as the caller
    read it under its lock; `fresh` says it was stored in this transaction (nothing was offered
    yet, nobody declined or lost it).
    """
    order = locked if locked is not None and locked.pk == order_id else order_lock(order_id)
    if order is None or order.status not in Order.WAITING_STATUSES:
        return None
    if order.zone is None:
        if order.status == S.RECEIVED:
            lifecycle.order_mark_unassigned(order_id=order_id, reason="no_zone", now=now, locked=order)
        return None
    if not fresh and offer_services.order_has_pending_offer(order_id):
        return None  # drivers are considering it; their answers or the expiry sweep move it on
    trace = DecisionTrace(order=order, now=now)
    fanout = order.zone.offer_fanout
    # Not the drivers who declined it or let it lapse, who are considering another offer, or
    # who lost this order by reassignment: excluded in the database.
    excluded = [offer_services.driver_has_pending_offer()]
    if not fresh:
        excluded += [offer_services.drivers_who_missed(order_id), selectors.drivers_reassigned_away_from(order_id)]
        trace.passed_over(order_id)
    why_no_offer = offer_services.offer_decider()
    for driver in _candidates(order, now, excluded, window=fanout + TRACE_EXTRA_CANDIDATES, is_done=lambda: trace.offered > 0):
        if trace.offered >= fanout:
            trace.considered(driver, "not_needed")
            continue
        no_offer = why_no_offer(driver)
        if no_offer is None:
            if not driver_lock_unless_held(driver.pk):
                trace.considered(driver, "skipped", "in_another_decision")
                continue
            if offer_services.offer_make(order=order, driver=driver, now=now, audit_entries=trace.audit_entries) is None:
                trace.considered(driver, "skipped", "in_another_offer")  # took another offer a moment ago
                continue
            if not trace.offered:
                lifecycle.order_candidates_found(order=order)
            trace.considered(driver, "offered")
            continue
        if trace.offered:
            trace.considered(driver, "skipped", no_offer)  # offers are out; direct assignment would race them
            continue
        try:
            move = lifecycle.order_assign(
                order_id=order_id, driver_id=driver.pk, actor=SYSTEM, now=now, reason="best_candidate", locked=order, wait_for_driver=False
            )
        except OverCapacity:
            trace.considered(driver, "skipped", "at_capacity")
            continue
        except DriverUnavailable:
            trace.considered(driver, "skipped", "deactivated")
            continue
        except DriverBusy:
            trace.considered(driver, "skipped", "in_another_decision")
            continue
        except IllegalTransition:
            return None  # someone else (another worker, ops) moved the order first
        trace.considered(driver, "assigned", no_offer)
        trace.record("assigned")
        order_moved(move, now)
        return move.order
    if trace.offered:
        trace.record("offered")
        return None
    if order.out_of_candidates_at is None:
        trace.record("no_candidates")  # once per stretch of finding nobody, not at every retry
    if order.status == S.RECEIVED:
        lifecycle.order_mark_unassigned(order_id=order_id, reason="no_candidates", now=now, locked=order)
    lifecycle.order_out_of_candidates(order=order, now=now)
    return None


def _candidates(order: Order, now: datetime, excluded: list[selectors.DriverExclusion], *, window: int, is_done: Callable[[], bool]) -> Iterator[Driver]:
    """The zone's candidates best first, a window at a time: the next window is read only
    when a whole window went by without an offer or an assignment (everyone in it raced into
    another offer, filled up or was deactivated meanwhile)."""
    assert order.zone is not None
    tried: list[int] = []
    while True:
        drivers = selectors.candidate_drivers(order.zone, order.pickup_lat, order.pickup_lon, now=now, exclude=[*excluded, tried], limit=window)
        for driver in drivers:
            tried.append(driver.pk)
            yield driver
        if len(drivers) < window or is_done():
            return


def assign_orders_due(*, now: datetime | None = None, limit: int | None = None, zone_ids: list[int] | None = None) -> int:
    """The assignment sweep: retry waiting orders, oldest first. Safe to run twice at once.

    Each order is locked with SKIP LOCKED in its own short transaction, so two sweeps split
    the work instead of queueing on each other. Every waiting order is tried on its own: one
    that found nobody (say, every driver declined it) says nothing about the next one in the
    same zone. Returns how many orders were assigned directly.
    """
    now = now or database_now()
    limit = limit or settings.DISPATCH_ASSIGN_SWEEP_BATCH
    waiting = selectors.orders_waiting_for_driver()
    if zone_ids is not None:
        waiting = waiting.filter(zone_id__in=zone_ids)
    assigned = 0
    for order_id in list(waiting.values_list("pk", flat=True)[:limit]):
        with transaction.atomic(durable=True):
            order = order_lock(order_id, skip_locked=True)
            if order is None:
                continue  # another sweep or an answer holds it
            if order_dispatch_locked(order_id=order_id, now=now, locked=order) is not None:
                assigned += 1
    return assigned


def assign_orders_for_driver(*, driver_id: int, now: datetime | None = None) -> int:
    """A driver can take work again (came online, freed capacity): try the waiting orders of
    their zones, as many as they have room for. The periodic sweep does the rest."""
    from dispatch.models import Driver

    driver = Driver.objects.filter(pk=driver_id).values("capacity", "active_order_count").first()
    if driver is None:
        return 0
    room = max(driver["capacity"] - driver["active_order_count"], 0)
    if not room:
        return 0
    zone_ids = list(Driver.zones.through.objects.filter(driver_id=driver_id).values_list("zone_id", flat=True))
    return assign_orders_due(now=now, limit=room, zone_ids=zone_ids)
