"""Offer lifecycle: made, accepted, declined, expired, withdrawn, taken back.

Everything here runs inside the caller's transaction, which holds the order's row lock
(`dispatch.locks.order_lock`): offers are only ever changed under their order's lock, so
everything that happens to one order is serialised on that row. Each change is a
compare-and-set with its audit event. What follows from a change for the order (assign it,
offer it to the next driver) is composed above, in `usecases.offers`.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from audit.actors import SYSTEM, Actor
from audit.services import audit_record, audit_record_many
from dispatch.after_commit import after_commit
from dispatch.clock import database_datetime
from dispatch.errors import NotFound
from dispatch.geometry import distance_m
from dispatch.models import Driver, Order
from dispatch.rows import row_ids, row_insert_unless_conflict, row_update, rows_read
from dispatch.selectors import DriverExclusion
from observability import metrics
from offers.errors import OfferAlreadyAnswered, OfferExpired, OfferTaken, OfferWithdrawn
from offers.frames import offer_withdrawn_frame
from offers.models import Offer
from offers.notify import offer_answered, offer_sent
from rollout.models import Feature

logger = logging.getLogger(__name__)
P = Offer.State.PENDING
_OFFERS = Offer._meta.db_table


SWITCHED_OFF = "offers_switched_off"


def offer_decider() -> Callable[[Driver], str | None]:
    """For each candidate of one dispatch decision, None when they get an offer (v2), else why
    not (they get an assignment, v1): the switch and the share are read once for the whole
    decision, and the switch's row is held until the decision commits (see `switch_is_on`)."""
    from rollout.selectors import switch_and_share_held, why_feature_off_for

    is_on, percentage = switch_and_share_held(Feature.OFFERS)
    if not is_on:
        return lambda driver: SWITCHED_OFF
    return lambda driver: why_feature_off_for(Feature.OFFERS, driver, percentage=percentage)


def order_has_pending_offer(order_id: int) -> bool:
    return bool(row_ids(Offer, order_id=order_id, state=P))  # every decision about a waiting order asks


def drivers_who_missed(order_id: int) -> DriverExclusion:
    """Drivers who declined or let this order's offer lapse, excluded from its candidates in
    the database (through the order's own offers)."""
    missed = ", ".join(f"'{state}'" for state in Offer.MISSED_STATES)  # code constants
    return DriverExclusion(f"EXISTS (SELECT 1 FROM {_OFFERS} mo WHERE mo.order_id = %s AND mo.driver_id = d.id AND mo.state IN ({missed}))", (order_id,))  # noqa: S608


def driver_has_pending_offer() -> DriverExclusion:
    """Whether a candidate is considering an offer right now, asked of each candidate row
    through the one-pending-offer-per-driver index. Not `NOT IN (every pending offer)`: that
    read all the system's pending offers at each decision, so an expiry sweep over 10,000 due
    offers grew quadratic (bench/expiry_sweep.py)."""
    return DriverExclusion(f"EXISTS (SELECT 1 FROM {_OFFERS} po WHERE po.driver_id = d.id AND po.state = '{P}')")  # noqa: S608 (names and code constants only)


def _offer_audit_entry(offer: Offer, order: Order, kind: str, *, actor: Actor, before: str | None, after: str, **data: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "actor": actor,
        "subject_type": "offer",
        "subject_id": offer.pk,
        "order_id": order.pk,
        "order_code": order.code,
        "driver_id": offer.driver_id,
        "zone_id": order.zone_id,
        "before": {"state": before} if before else None,
        "after": {"state": after},
        "data": data,
    }


def _offer_audit(offer: Offer, order: Order, kind: str, *, actor: Actor, before: str | None, after: str, **data: Any) -> None:
    audit_record(**_offer_audit_entry(offer, order, kind, actor=actor, before=before, after=after, **data))


def offer_make(*, order: Order, driver: Driver, now: datetime, audit_entries: list[dict[str, Any]] | None = None) -> Offer | None:
    """Put the order to the driver until the zone's time limit; None if they got another offer
    first. With `audit_entries`, the offer's audit event is added there for the caller to write
    with its own (one INSERT for a whole decision) before its transaction ends."""
    timeout_s = order.zone.offer_timeout_s if order.zone else 30
    distance = getattr(driver, "distance_m", None)
    if distance is None and driver.last_lat is not None and driver.last_lon is not None:
        distance = distance_m(driver.last_lat, driver.last_lon, order.pickup_lat, order.pickup_lon)
    offer = Offer(order=order, driver=driver, state=P, created_at=now, expires_at=now + timedelta(seconds=timeout_s))
    offer.distance_m = round(distance) if distance is not None else None
    if not row_insert_unless_conflict(offer):
        return None  # the partial unique index: this driver already holds a pending offer
    offer.order = order
    entry = _offer_audit_entry(offer, order, "offer.made", actor=SYSTEM, before=None, after=P, expires_at=offer.expires_at.isoformat(), timeout_s=timeout_s)
    if audit_entries is None:
        audit_record(**entry)
    else:
        audit_entries.append(entry)
    metrics.offer_event(order.zone_id, "sent")
    after_commit(lambda: offer_sent(offer))
    return offer


def _refusal(offer: Offer, now: datetime) -> Exception:
    if (offer.state == P and offer.expires_at <= now) or offer.state == Offer.State.EXPIRED:
        return OfferExpired(f"offer {offer.pk} expired at {offer.expires_at.isoformat()}", offer=offer.pk)
    if offer.state == Offer.State.WITHDRAWN and offer.withdrawn_reason == Offer.WithdrawnReason.TAKEN:
        return OfferTaken(f"order {offer.order_id} was taken by another driver", offer=offer.pk)
    if offer.state == Offer.State.TAKEN_BACK:
        return OfferWithdrawn(f"order {offer.order_id} was taken back from you after you accepted it", offer=offer.pk, reason=Offer.State.TAKEN_BACK)
    if offer.state == Offer.State.WITHDRAWN:
        return OfferWithdrawn(f"offer {offer.pk} was withdrawn: {offer.get_withdrawn_reason_display()}", offer=offer.pk, reason=offer.withdrawn_reason)
    return OfferAlreadyAnswered(f"offer {offer.pk} was already {offer.state}", offer=offer.pk, state=offer.state)


def driver_offer(*, offer_id: int, driver: Driver) -> Offer:
    """The driver's own offer, read without locking; someone else's offer does not exist for them."""
    found = rows_read(Offer, id=offer_id, driver_id=driver.pk)
    if not found:
        raise NotFound(f"offer {offer_id} not found")
    return found[0]


def offer_answer_check(offer: Offer, *, answer: str, now: datetime) -> bool:
    """Whether the offer still waits for this answer: False when it already has it (a resend
    after a reconnect changes nothing), a refusal saying why when it has another fate."""
    if offer.state == answer:
        return False
    if offer.state != P or (answer == Offer.State.ACCEPTED and offer.expires_at <= now):
        raise _refusal(offer, now)
    return True


def offer_accept(*, offer: Offer, order: Order, driver: Driver, now: datetime) -> None:
    """The driver's accept, by compare-and-set, under the order's lock (the caller assigns the
    order); the order's other pending offers are withdrawn as taken. On PostgreSQL the two are
    one statement, the rivals' UPDATE running only when the accept's won: every accept pays it."""
    if connection.vendor == "postgresql":
        won, rivals = _offer_accept_ending_rivals(offer, driver, now)
    else:  # the embedded SQLite has no UPDATE inside WITH
        changes = {"state": Offer.State.ACCEPTED, "answered_at": now}
        won = row_update(Offer, offer.pk, changes, expected={"driver_id": driver.pk, "state": P}, later_than={"expires_at": now})
        rivals = _pending_offers_end("order_id = %s", [order.pk], to=Offer.State.WITHDRAWN, withdrawn_reason=_TAKEN, now=now) if won else []
    if not won:
        offer.refresh_from_db()
        raise _refusal(offer, now)
    offer.state, offer.answered_at, offer.order = Offer.State.ACCEPTED, now, order
    _offer_audit(offer, order, "offer.accepted", actor=Actor.driver(driver.pk, driver.name), before=P, after=Offer.State.ACCEPTED)
    metrics.offer_event(order.zone_id, "accepted", (now - offer.created_at).total_seconds())
    after_commit(lambda: offer_answered(offer))
    _offers_ended(rivals, {order.pk: order}, kind="offer.withdrawn", state=Offer.State.WITHDRAWN, now=now, reason=_TAKEN)


_TAKEN = Offer.WithdrawnReason.TAKEN


def _offer_accept_ending_rivals(offer: Offer, driver: Driver, now: datetime) -> tuple[bool, list[tuple[int, int, int, datetime]]]:
    table = connection.ops.quote_name(Offer._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH won AS (UPDATE {table} SET state = %(accepted)s, answered_at = %(now)s "  # noqa: S608 (no outside text)
            "WHERE id = %(offer)s AND driver_id = %(driver)s AND state = %(pending)s AND expires_at > %(now)s RETURNING id), "
            f"rivals AS (UPDATE {table} SET state = %(withdrawn)s, withdrawn_reason = %(taken)s, answered_at = %(now)s "
            "WHERE state = %(pending)s AND order_id = %(order)s AND id <> %(offer)s AND EXISTS (SELECT 1 FROM won) "
            "RETURNING id, order_id, driver_id, created_at) "
            "SELECT EXISTS (SELECT 1 FROM won), rivals.id, rivals.order_id, rivals.driver_id, rivals.created_at "
            "FROM (SELECT 1) AS one LEFT JOIN rivals ON true",
            {
                "accepted": Offer.State.ACCEPTED,
                "withdrawn": Offer.State.WITHDRAWN,
                "pending": P,
                "taken": _TAKEN,
                "now": now,
                "offer": offer.pk,
                "driver": driver.pk,
                "order": offer.order_id,
            },
        )
        rows = cursor.fetchall()
    won = bool(rows[0][0])
    return won, [(row[1], row[2], row[3], database_datetime(row[4])) for row in rows if row[1] is not None]


def offer_decline(*, offer: Offer, order: Order, driver: Driver, reason: str, now: datetime) -> None:
    """The driver's decline, by compare-and-set, under the order's lock."""
    reason = reason[:255]
    won = Offer.objects.filter(pk=offer.pk, driver=driver, state=P).update(state=Offer.State.DECLINED, answered_at=now, decline_reason=reason)
    if not won:
        offer.refresh_from_db()
        raise _refusal(offer, now)
    offer.state, offer.answered_at, offer.decline_reason = Offer.State.DECLINED, now, reason
    _offer_audit(offer, order, "offer.declined", actor=Actor.driver(driver.pk, driver.name), before=P, after=Offer.State.DECLINED, reason=reason)
    metrics.offer_event(order.zone_id, "declined", (now - offer.created_at).total_seconds())


def _pending_offers_end(where: str, params: list[Any], *, to: str, withdrawn_reason: str, now: datetime) -> list[tuple[int, int, int, datetime]]:
    """End pending offers in one set-based UPDATE ... RETURNING; returns (offer, order, driver,
    created_at) of each offer ended. The caller holds the orders' locks."""
    table = connection.ops.quote_name(Offer._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET state = %s, withdrawn_reason = %s, answered_at = %s WHERE state = %s AND {where} "  # noqa: S608 (no outside text)
            "RETURNING id, order_id, driver_id, created_at",
            [to, withdrawn_reason, now, P, *params],
        )
        return [(row[0], row[1], row[2], database_datetime(row[3])) for row in cursor.fetchall()]


def _offers_ended(ended: list[tuple[int, int, int, datetime]], orders: dict[int, Order], *, kind: str, state: str, now: datetime, reason: str = "") -> None:
    """The audit events (one INSERT), metrics and frames of offers ended together."""
    if not ended:
        return
    entries = []
    for offer_id, order_id, driver_id, _ in ended:
        offer = Offer(pk=offer_id, order_id=order_id, driver_id=driver_id)
        data = {"reason": reason} if reason else {}
        entries.append(_offer_audit_entry(offer, orders[order_id], kind, actor=SYSTEM, before=P, after=state, **data))
    audit_record_many(entries)
    for _, order_id, _, created_at in ended:
        metrics.offer_event(orders[order_id].zone_id, state, (now - created_at).total_seconds() if state == Offer.State.EXPIRED else None)
    frames = [(driver_id, offer_withdrawn_frame(offer_id, reason or state)) for offer_id, _, driver_id, _ in ended]
    after_commit(lambda: _frames_send(frames))


def offers_withdraw(*, order: Order, reason: str, now: datetime, driver_id: int | None = None) -> list[int]:
    """Withdraw the order's pending offers (only the driver's, with `driver_id`) in one
    statement and one audit INSERT; returns their ids. The caller holds the order's lock."""
    where, params = "order_id = %s", [order.pk]
    if driver_id is not None:
        where, params = "order_id = %s AND driver_id = %s", [order.pk, driver_id]
    ended = _pending_offers_end(where, params, to=Offer.State.WITHDRAWN, withdrawn_reason=reason, now=now)
    _offers_ended(ended, {order.pk: order}, kind="offer.withdrawn", state=Offer.State.WITHDRAWN, now=now, reason=reason)
    return [offer_id for offer_id, *_ in ended]


def offers_expire(*, orders: dict[int, Order], now: datetime) -> list[tuple[int, int, int, datetime]]:
    """Lapse the pending offers of these (locked) orders whose deadline passed by `now`, in
    one statement and one audit INSERT; returns (offer, order, driver, created_at) of each."""
    placeholders = ", ".join(["%s"] * len(orders))
    ended = _pending_offers_end(f"expires_at <= %s AND order_id IN ({placeholders})", [now, *orders], to=Offer.State.EXPIRED, withdrawn_reason="", now=now)
    _offers_ended(ended, orders, kind="offer.expired", state=Offer.State.EXPIRED, now=now)
    return ended


def offers_due_to_expire(*, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(offer, order) of pending offers past their deadline, oldest deadline first."""
    return list(Offer.objects.filter(state=P, expires_at__lte=now).order_by("expires_at", "pk").values_list("pk", "order_id")[:limit])


def offer_take_back(*, order: Order, driver_id: int, reason: str) -> Offer | None:
    """The order was taken from the driver who had accepted its offer: that offer is taken back.

    Under the order's lock. Without it the partial unique index "one accepted offer per order"
    would refuse every later accept of the order.
    """
    offer = Offer.objects.filter(order_id=order.pk, driver_id=driver_id, state=Offer.State.ACCEPTED).first()
    if offer is None:
        return None  # assigned the v1 way or by ops: no offer was accepted
    if not Offer.objects.filter(pk=offer.pk, state=Offer.State.ACCEPTED).update(state=Offer.State.TAKEN_BACK):
        return None
    _offer_audit(offer, order, "offer.taken_back", actor=SYSTEM, before=Offer.State.ACCEPTED, after=Offer.State.TAKEN_BACK, reason=reason)
    offer.state = Offer.State.TAKEN_BACK
    return offer


def _frames_send(frames: list[tuple[int, dict[str, Any]]]) -> None:
    from offers.notify import driver_frame_send, driver_frames_batched

    with driver_frames_batched():
        for driver_id, frame in frames:
            driver_frame_send(driver_id, frame)
