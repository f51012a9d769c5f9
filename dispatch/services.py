"""Every write to orders and drivers' capacity: the order lifecycle and v1 assignment.

Each transition is a compare-and-set (a conditional UPDATE on the state read) inside a
transaction that also writes its audit event. Rows are touched in one fixed order, orders
before drivers, so concurrent transitions never deadlock.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.actors import SYSTEM, Actor
from audit.services import audit_record
from dispatch import limits, selectors
from dispatch.errors import DriverUnavailable, IllegalTransition, InvalidInput, NotFound, OverCapacity
from dispatch.models import Driver, Order, Reassignment, ShopChannel
from dispatch.outbound import outbound_url_check
from dispatch.signals import order_moved, order_status_changed, order_stopped_waiting
from observability import metrics

logger = logging.getLogger(__name__)

S = Order.Status

# Which status may follow which. Terminal statuses have no way out.
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.ASSIGNED, S.UNASSIGNED, S.CANCELLED}),
    S.UNASSIGNED: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.PICKED_UP, S.UNASSIGNED, S.CANCELLED, S.FAILED}),
    S.PICKED_UP: frozenset({S.DELIVERED, S.FAILED, S.CANCELLED}),
    S.DELIVERED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
}

# The timestamp column each status stamps when it is entered.
STATUS_TIME_FIELD: dict[str, str] = {
    S.ASSIGNED: "assigned_at",
    S.UNASSIGNED: "unassigned_at",
    S.PICKED_UP: "picked_up_at",
    S.DELIVERED: "delivered_at",
    S.CANCELLED: "cancelled_at",
    S.FAILED: "failed_at",
}


@dataclass(frozen=True)
class OrderIntake:
    """An order as a shop hands it over, already validated and in our units."""

    vendure_order_id: str
    code: str
    vendure_state: str
    currency: str
    total_minor: int
    delivery_fee_minor: int
    placed_at: datetime | None = None
    dropoff_address: dict[str, Any] = field(default_factory=dict)
    dropoff_postal_code: str = ""
    dropoff_lat: float | None = None
    dropoff_lon: float | None = None
    customer_name: str = ""
    customer_phone: str = ""
    customer_email: str = ""
    lines: list[dict[str, Any]] = field(default_factory=list)
    item_summary: str = ""
    promised_at: datetime | None = None


def order_audit_record(
    order: Order, kind: str, *, actor: Actor, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None, **data: Any
) -> None:
    """An audit event about an order, filed under its id, code, zone and driver for search."""
    audit_record(
        kind,
        actor=actor,
        subject_type="order",
        subject_id=order.pk,
        order_id=order.pk,
        order_code=order.code,
        driver_id=(after or {}).get("driver") or (before or {}).get("driver") or order.driver_id,
        zone_id=order.zone_id,
        before=before,
        after=after,
        data=data,
    )


def _snapshot(status: str, driver_id: int | None) -> dict[str, Any]:
    return {"status": status, "driver": driver_id}


def _announce(order_id: int, before: str, after: str) -> None:
    # robust: a failing receiver (say, the broker is down) is logged and never undoes or
    # fails the committed change; the periodic sweeps catch up on whatever it missed.
    transaction.on_commit(
        lambda: order_status_changed.send(sender=Order, order_id=order_id, before=before, after=after),
        robust=True,
    )


def _release_capacity(driver_id: int, now: datetime) -> None:
    """Give back one unit of the driver's capacity; a driver left with nothing is idle from now."""
    Driver.objects.filter(pk=driver_id, active_order_count__gt=0).update(active_order_count=F("active_order_count") - 1)
    Driver.objects.filter(pk=driver_id, active_order_count=0).update(idle_since=now)


def _take_capacity(driver_id: int, now: datetime) -> None:
    """Take one unit of the driver's capacity, or refuse: the conditional UPDATE is the lock."""
    taken = Driver.objects.filter(pk=driver_id, active_order_count__lt=F("capacity")).update(active_order_count=F("active_order_count") + 1, idle_since=now)
    if not taken:
        if not Driver.objects.filter(pk=driver_id).exists():
            raise NotFound(f"driver {driver_id} does not exist")
        raise OverCapacity(f"driver {driver_id} has no free capacity", driver=driver_id)


def _order_move(
    order_id: int,
    to: str,
    *,
    actor: Actor,
    now: datetime,
    kind: str | None = None,
    only_driver_id: int | None = None,
    only_from: tuple[str, ...] | None = None,
    fields: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Order:
    """Move an order to `to` by compare-and-set; release capacity when it leaves a driver.

    `only_driver_id` restricts the move to the order's own driver: anyone else is told the
    order does not exist, so drivers cannot probe each other's orders. `only_from` narrows
    the statuses the move may start from.
    """
    with transaction.atomic():
        # Read under the row lock: a racing change (an accept, a cancellation) commits first
        # and we decide on what it left, instead of failing on a stale read.
        current = Order.objects.select_for_update().filter(pk=order_id).values("status", "driver_id").first()
        if current is None or (only_driver_id is not None and current["driver_id"] != only_driver_id):
            raise NotFound(f"order {order_id} not found")
        status, driver_id = current["status"], current["driver_id"]
        if to not in ORDER_TRANSITIONS[status] or (only_from is not None and status not in only_from):
            raise IllegalTransition(f"order {order_id}", status, to)
        changes: dict[str, Any] = {"status": to, "status_changed_at": now, STATUS_TIME_FIELD[to]: now}
        if to == S.UNASSIGNED:
            changes["driver"] = None  # a finished or cancelled order keeps its driver, for the record
        changes.update(fields or {})
        won = Order.objects.filter(pk=order_id, status=status, driver_id=driver_id).update(**changes)
        if not won:
            # Someone moved it between our read and our write: report what it is now.
            now_status = Order.objects.filter(pk=order_id).values_list("status", flat=True).first() or "gone"
            raise IllegalTransition(f"order {order_id}", now_status, to)
        if driver_id is not None and status in Order.ACTIVE_STATUSES and to not in Order.ACTIVE_STATUSES:
            _release_capacity(driver_id, now)
        if status in Order.WAITING_STATUSES and to not in Order.WAITING_STATUSES:
            order_stopped_waiting.send(sender=Order, order_id=order_id, to=to, reason=(data or {}).get("reason", ""))
        order = Order.objects.get(pk=order_id)
        order_audit_record(
            order,
            kind or f"order.{to}",
            actor=actor,
            before=_snapshot(status, driver_id),
            after=_snapshot(to, order.driver_id),
            **(data or {}),
        )
        order_moved.send(sender=Order, order_id=order_id, before=status, after=to, driver_id=driver_id, reason=(data or {}).get("reason", ""))
        if to in Order.TERMINAL_STATUSES:
            metrics.order_finished(order.zone_id, to)
        _announce(order_id, status, to)
    return order


# --- Intake ----------------------------------------------------------------------------


def order_receive(*, channel: ShopChannel, intake: OrderIntake, actor: Actor, now: datetime | None = None) -> tuple[Order, bool]:
    """Store a shop's order once. Returns (order, created); a known order is left as it is."""
    now = now or timezone.now()
    existing = Order.objects.filter(channel=channel, vendure_order_id=intake.vendure_order_id).first()
    if existing is not None:
        return existing, False
    zone = selectors.zone_for_dropoff(intake.dropoff_lat, intake.dropoff_lon, intake.dropoff_postal_code)
    try:
        with transaction.atomic():
            order = Order.objects.create(
                channel=channel,
                zone=zone,
                pickup_lat=channel.pickup_lat,
                pickup_lon=channel.pickup_lon,
                status=S.RECEIVED,
                status_changed_at=now,
                received_at=now,
                **intake.__dict__,
            )
            order_audit_record(
                order,
                "order.received",
                actor=actor,
                before=None,
                after=_snapshot(S.RECEIVED, None),
                zone=zone.slug if zone else None,
                vendure_order_id=intake.vendure_order_id,
            )
            metrics.order_received(order.zone_id)
    except IntegrityError:
        # The same order arrived concurrently under another event id; the first one won.
        return Order.objects.get(channel=channel, vendure_order_id=intake.vendure_order_id), False
    return order, True


# --- Assignment (v1: directly to the best driver) --------------------------------------


def order_assign(*, order_id: int, driver_id: int, actor: Actor, now: datetime | None = None, reason: str = "") -> Order:
    """Assign a waiting order to a driver with free capacity."""
    now = now or timezone.now()
    with transaction.atomic():
        current = Order.objects.select_for_update().filter(pk=order_id).values_list("status", flat=True).first()
        if current is None:
            raise NotFound(f"order {order_id} not found")
        if S.ASSIGNED not in ORDER_TRANSITIONS[current]:
            raise IllegalTransition(f"order {order_id}", current, S.ASSIGNED)
        won = Order.objects.filter(pk=order_id, status=current, driver__isnull=True).update(
            status=S.ASSIGNED, driver_id=driver_id, assigned_at=now, status_changed_at=now, waiting_reason="", out_of_candidates_at=None
        )
        if not won:
            now_status = Order.objects.filter(pk=order_id).values_list("status", flat=True).first() or "gone"
            raise IllegalTransition(f"order {order_id}", now_status, S.ASSIGNED)
        _take_capacity(driver_id, now)  # raising here rolls the order back too
        # Read after the capacity UPDATE holds the driver's row: a deactivation that committed
        # while we waited for it is seen here, so a deactivated driver takes no work, however
        # it is given (v1, an accept, ops by hand).
        if not Driver.objects.filter(pk=driver_id, user__is_active=True).exists():
            raise DriverUnavailable(f"driver {driver_id} is deactivated", driver=driver_id)
        order_stopped_waiting.send(sender=Order, order_id=order_id, to=S.ASSIGNED, reason=reason)
        order = Order.objects.get(pk=order_id)
        order_audit_record(
            order,
            "order.assigned",
            actor=actor,
            before=_snapshot(current, None),
            after=_snapshot(S.ASSIGNED, driver_id),
            reason=reason,
        )
        order_moved.send(sender=Order, order_id=order_id, before=current, after=S.ASSIGNED, driver_id=None, reason=reason)
        metrics.order_assigned(order.zone_id, (now - order.received_at).total_seconds())
        _announce(order_id, current, S.ASSIGNED)
    return order


def order_mark_unassigned(*, order_id: int, reason: str, actor: Actor = SYSTEM, now: datetime | None = None) -> Order:
    """A just-received order found no driver: it waits for the assignment sweep."""
    return _order_move(order_id, S.UNASSIGNED, actor=actor, now=now or timezone.now(), fields={"waiting_reason": reason}, data={"reason": reason})


def order_dispatch(*, order_id: int, now: datetime | None = None) -> Order | None:
    """Find a driver for a waiting order; returns the order when it was assigned directly.

    Candidates are taken best first. Each one is decided for on its own: a driver for whom
    v2 offers are on (switch, rollout share, app) is offered the order, up to the zone's
    fan-out; otherwise, while no offer is out, the driver is assigned directly (v1). A
    driver who filled up meanwhile is skipped. An order that finds nobody is marked
    unassigned once (a rerun of the sweep writes nothing new). The order's row is locked
    for the decision, so two dispatchers never put out offers for one order side by side.
    """
    with transaction.atomic():
        return _order_dispatch_locked(order_id=order_id, now=now or timezone.now())


def _order_dispatch_locked(*, order_id: int, now: datetime) -> Order | None:
    from offers import services as offer_services  # offers build on the order lifecycle here

    order = Order.objects.select_for_update(of=("self",)).select_related("zone").filter(pk=order_id).first()
    if order is None or order.status not in Order.WAITING_STATUSES:
        return None
    if order.zone is None:
        if order.status == S.RECEIVED:
            order_mark_unassigned(order_id=order_id, reason="no_zone", now=now)
        return None
    if offer_services.order_has_pending_offer(order_id):
        return None  # drivers are considering it; their answers or the expiry sweep move it on
    offered = 0
    # Not the drivers who declined it or let it lapse, who are considering another offer, or
    # who lost this order by reassignment.
    excluded = [offer_services.drivers_not_to_offer(order_id), Reassignment.objects.filter(order_id=order_id).values("driver_id")]
    gets_offer = offer_services.offer_decider()
    for driver in selectors.candidate_drivers(order.zone, order.pickup_lat, order.pickup_lon, now=now, exclude=excluded):
        if gets_offer(driver):
            if offer_services.offer_make(order=order, driver=driver, now=now) is not None:
                if not offered and order.out_of_candidates_at is not None:
                    Order.objects.filter(pk=order_id).update(out_of_candidates_at=None)
                offered += 1
                if offered >= order.zone.offer_fanout:
                    return None
            continue
        if offered:
            continue  # offers are out; direct assignment would race them
        try:
            return order_assign(order_id=order_id, driver_id=driver.pk, actor=SYSTEM, now=now, reason="best_candidate")
        except (OverCapacity, DriverUnavailable):
            continue
        except IllegalTransition:
            return None  # someone else (another worker, ops) moved the order first
    if offered:
        return None
    status = order.status
    if status == S.RECEIVED:
        try:
            status = order_mark_unassigned(order_id=order_id, reason="no_candidates", now=now).status
        except IllegalTransition:
            return None  # assigned or cancelled meanwhile
    _order_out_of_candidates(order, status, now)
    return None


def _order_out_of_candidates(order: Order, status: str, now: datetime) -> None:
    """Dispatch found nobody for the order: note since when, once (the escalation sweep reads it)."""
    if order.out_of_candidates_at is not None:
        return
    if Order.objects.filter(pk=order.pk, status=status, out_of_candidates_at__isnull=True).update(out_of_candidates_at=now):
        order_audit_record(
            order,
            "order.out_of_candidates",
            actor=SYSTEM,
            before={"status": status, "out_of_candidates_at": None},
            after={"status": status, "out_of_candidates_at": now.isoformat()},
        )


def order_assign_manually(*, order_id: int, driver_id: int, actor: Actor, now: datetime | None = None) -> Order:
    """Ops give an order to a chosen driver, taking it from its current driver if needed."""
    now = now or timezone.now()
    with transaction.atomic():
        current = Order.objects.filter(pk=order_id).values("status", "driver_id").first()
        if current is None:
            raise NotFound(f"order {order_id} not found")
        if current["status"] == S.ASSIGNED:
            if current["driver_id"] == driver_id:
                raise IllegalTransition(f"order {order_id}", "already assigned to this driver", S.ASSIGNED)
            _order_move(
                order_id,
                S.UNASSIGNED,
                actor=actor,
                now=now,
                kind="order.unassigned",
                fields={"waiting_reason": "reassigned_by_ops"},
                data={"reason": "reassigned_by_ops"},
            )
        return order_assign(order_id=order_id, driver_id=driver_id, actor=actor, now=now, reason="manual")


def order_unassign(*, order_id: int, actor: Actor, reason: str = "unassigned_by_ops", now: datetime | None = None) -> Order:
    """Take an assigned order back from its driver; it waits for the next assignment."""
    return _order_move(order_id, S.UNASSIGNED, actor=actor, now=now or timezone.now(), fields={"waiting_reason": reason}, data={"reason": reason})


def order_reassign(*, order_id: int, reason: str, actor: Actor = SYSTEM, driver_id: int | None = None, now: datetime | None = None) -> Order:
    """Take an order not yet picked up from its driver and give it to the next one at once.

    The driver (`driver_id`, when the caller decided about a particular one) is told, is
    not offered the order again, and the order counts one more reassignment. Reassigning
    a picked-up order is refused: the driver holds the goods.
    """
    now = now or timezone.now()
    with transaction.atomic():
        current = Order.objects.select_for_update().filter(pk=order_id).values("driver_id").first()
        if current is None:
            raise NotFound(f"order {order_id} not found")
        from_driver_id = current["driver_id"]
        if driver_id is not None and from_driver_id != driver_id:
            raise IllegalTransition(f"order {order_id}", f"no longer held by driver {driver_id}", S.UNASSIGNED)
        order = _order_move(
            order_id,
            S.UNASSIGNED,
            actor=actor,
            now=now,
            kind="order.reassigned",
            only_from=(S.ASSIGNED,),
            fields={"waiting_reason": reason, "reassign_count": F("reassign_count") + 1},
            data={"reason": reason, "from_driver": from_driver_id},
        )
        Reassignment.objects.create(order_id=order_id, driver_id=from_driver_id, reason=reason, at=now)
        metrics.order_reassigned(order.zone_id, reason)
        transaction.on_commit(lambda: _tell_driver_order_taken(from_driver_id, order_id, reason), robust=True)
        order_dispatch(order_id=order_id, now=now)
    return Order.objects.get(pk=order_id)


def _tell_driver_order_taken(driver_id: int, order_id: int, reason: str) -> None:
    from offers.notify import order_taken_back_send

    order_taken_back_send(driver_id=driver_id, order_id=order_id, reason=reason)


def order_limits_extend(*, order_id: int, minutes: int, actor: Actor, now: datetime | None = None) -> Order:
    """Ops give an order more time: no reassignment or escalation of it before then."""
    from django.conf import settings

    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= settings.ESCALATION_MAX_EXTENSION_MIN:
        raise InvalidInput(f"an extension is 1 to {settings.ESCALATION_MAX_EXTENSION_MIN} minutes", minutes=minutes)
    now = now or timezone.now()
    until = now + timedelta(minutes=minutes)
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_id).first()
        if order is None:
            raise NotFound(f"order {order_id} not found")
        if order.status in Order.TERMINAL_STATUSES:
            raise IllegalTransition(f"order {order_id}", order.status, "extended")
        before = order.limits_extended_until
        Order.objects.filter(pk=order_id).update(limits_extended_until=until)
        order.limits_extended_until = until
        order_audit_record(
            order,
            "order.limits_extended",
            actor=actor,
            before={"limits_extended_until": before.isoformat() if before else None},
            after={"limits_extended_until": until.isoformat()},
            minutes=minutes,
        )
    return order


def assign_orders_due(*, now: datetime | None = None, limit: int | None = None) -> int:
    """The assignment sweep: retry waiting orders, oldest first. Safe to run twice at once.

    Each order is locked with SKIP LOCKED in its own short transaction, so two sweeps split
    the work instead of queueing on each other. Returns how many orders were assigned.
    """
    from django.conf import settings

    now = now or timezone.now()
    limit = limit or settings.DISPATCH_ASSIGN_SWEEP_BATCH
    assigned = 0
    # Every waiting order is tried on its own: one that found nobody (say, every driver
    # declined it) says nothing about the next one in the same zone.
    for order_id in selectors.orders_waiting_for_driver().values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            if not Order.objects.select_for_update(skip_locked=True).filter(pk=order_id, status__in=Order.WAITING_STATUSES).exists():
                continue
            if order_dispatch(order_id=order_id, now=now) is not None:
                assigned += 1
    return assigned


# --- Progress reported by the driver -----------------------------------------------------


def order_pick_up(*, order_id: int, driver: Driver, now: datetime | None = None) -> Order:
    return _order_move(order_id, S.PICKED_UP, actor=driver_actor(driver), now=now or timezone.now(), only_driver_id=driver.pk)


def order_deliver(*, order_id: int, driver: Driver, proof_note: str = "", proof_photo_ref: str = "", now: datetime | None = None) -> Order:
    return _order_move(
        order_id,
        S.DELIVERED,
        actor=driver_actor(driver),
        now=now or timezone.now(),
        only_driver_id=driver.pk,
        fields={"proof_note": proof_note, "proof_photo_ref": proof_photo_ref},
        data={"has_proof_photo": bool(proof_photo_ref)},
    )


def order_fail(*, order_id: int, actor: Actor, reason: str, driver: Driver | None = None, now: datetime | None = None) -> Order:
    """The delivery could not be made (customer absent, address wrong...)."""
    return _order_move(
        order_id,
        S.FAILED,
        actor=actor,
        now=now or timezone.now(),
        only_driver_id=driver.pk if driver else None,
        fields={"failure_reason": reason},
        data={"reason": reason},
    )


def order_cancel(*, order_id: int, actor: Actor, reason: str, now: datetime | None = None) -> Order:
    """Cancel an order (by the shop or by ops); its driver, if any, gets the capacity back."""
    return _order_move(order_id, S.CANCELLED, actor=actor, now=now or timezone.now(), fields={"cancel_reason": reason}, data={"reason": reason})


def driver_actor(driver: Driver) -> Actor:
    return Actor.driver(driver.pk, driver.name)


# --- Reference data edited by staff (zones, shops, driver profiles) -----------------------

# Secrets are recorded as changed, never by value (a Slack or PagerDuty target is a secret too).
AUDIT_HIDDEN_FIELDS = {"webhook_secret", "admin_api_token", "secret", "target"}


def reference_data_save(*, instance: Any, changed_fields: list[str], is_new: bool, actor: Actor, m2m_after: dict[str, Any] | None = None) -> None:
    """Save a zone, shop channel or driver profile edited by staff, with its audit event.

    Only the edited columns are written, so a profile edit never overwrites a driver's
    live counters; lowering a capacity below what the driver holds right now is refused.
    Secrets are recorded as changed, never by value.
    """
    model_name = instance._meta.model_name
    with transaction.atomic():
        before: dict[str, Any] = {}
        if is_new:
            instance.save()
        else:
            old = (
                type(instance).objects.filter(pk=instance.pk).values(*[f for f in changed_fields if not instance._meta.get_field(f).many_to_many]).first() or {}
            )
            before = {k: ("***" if k in AUDIT_HIDDEN_FIELDS else v) for k, v in old.items()}
            concrete = [f for f in changed_fields if not instance._meta.get_field(f).many_to_many]
            if isinstance(instance, Driver) and "capacity" in concrete:
                fits = Driver.objects.filter(pk=instance.pk, active_order_count__lte=instance.capacity).update(capacity=instance.capacity)
                if not fits:
                    raise OverCapacity(f"driver {instance.pk} holds more orders than a capacity of {instance.capacity}", capacity=instance.capacity)
                concrete.remove("capacity")
            if concrete:
                instance.save(update_fields=concrete)
        after = {f: ("***" if f in AUDIT_HIDDEN_FIELDS else _audit_value(instance, f)) for f in changed_fields}
        after.update(m2m_after or {})
        audit_record(
            f"{model_name}.{'created' if is_new else 'updated'}",
            actor=actor,
            subject_type=model_name,
            subject_id=instance.pk,
            driver_id=instance.pk if isinstance(instance, Driver) else None,
            before=before or None,
            after=after,
        )


def reference_data_delete(*, instance: Any, actor: Actor) -> None:
    """Delete a row of reference data edited by staff (a team's channel, a policy level), on the record."""
    model_name = instance._meta.model_name
    with transaction.atomic():
        before = {f.name: ("***" if f.name in AUDIT_HIDDEN_FIELDS else _audit_value(instance, f.name)) for f in instance._meta.concrete_fields}
        pk = instance.pk
        instance.delete()
        audit_record(f"{model_name}.deleted", actor=actor, subject_type=model_name, subject_id=pk, before=before, after=None)


def _audit_value(instance: Any, field_name: str) -> Any:
    field_ = instance._meta.get_field(field_name)
    if field_.many_to_many:
        return None  # saved by the form after save_model: the caller passes it in m2m_after
    value = field_.value_from_object(instance)
    return value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else str(value)


def driver_create(
    *, name: str, phone: str, zone_slugs: list[str], capacity: int, actor: Actor, vehicle: str = Driver.Vehicle.BICYCLE, username: str | None = None
) -> tuple[Driver, str]:
    """Create a driver with a login of their own and an API token; returns (driver, token key)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from dispatch.models import Zone

    # The model's own field validators are the one definition of a valid driver: the admin
    # form runs the same ones.
    _valid_or_refuse(Driver(name=name, phone=phone, capacity=capacity, vehicle=vehicle), exclude=["user"])
    unusable = [slug for slug in zone_slugs if len(slug) > 50 or limits.storable_text_problem(slug)]
    if unusable:
        raise InvalidInput(f"unknown zone(s): {', '.join(map(ascii, unusable))}", zones=[ascii(slug) for slug in unusable])
    zones = list(Zone.objects.filter(slug__in=zone_slugs))
    missing = sorted(set(zone_slugs) - {z.slug for z in zones})
    if missing:
        raise InvalidInput(f"unknown zone(s): {', '.join(missing)}", zones=missing)
    User = get_user_model()
    username = username or f"driver-{phone.replace('+', '').replace(' ', '')}"
    _valid_or_refuse(User(username=username, password="-"), exclude=[f.name for f in User._meta.fields if f.name != "username"])
    with transaction.atomic():
        if User.objects.filter(username=username).exists():
            raise InvalidInput(f"a user named {username} already exists", username=username)
        user = User.objects.create_user(username=username, first_name=name[:150])
        user.set_unusable_password()  # drivers sign in with their API token only
        user.save(update_fields=["password"])
        driver = Driver.objects.create(user=user, name=name, phone=phone, capacity=capacity, vehicle=vehicle)
        driver.zones.set(zones)
        token = Token.objects.create(user=user)
        audit_record(
            "driver.created",
            actor=actor,
            subject_type="driver",
            subject_id=driver.pk,
            driver_id=driver.pk,
            after={"name": name, "phone": phone, "capacity": capacity, "vehicle": vehicle, "zones": [z.slug for z in zones]},
        )
    return driver, token.key


def _valid_or_refuse(instance: Any, *, exclude: list[str]) -> None:
    """Refuse with InvalidInput unless every field passes its model's validators (ranges, lengths, choices)."""
    try:
        instance.clean_fields(exclude=exclude)
        _storable_text_or_refuse(instance, exclude=exclude)
    except ValidationError as exc:
        problems = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items())
        raise InvalidInput(f"{instance._meta.verbose_name} not valid: {problems}", fields=exc.message_dict) from exc


def _storable_text_or_refuse(instance: Any, *, exclude: list[str]) -> None:
    # Django's form fields refuse NUL, but a service called from a command (argv can carry
    # lone surrogates: Python decodes undecodable bytes to them) or a task has no form.
    errors = {}
    for field_ in instance._meta.concrete_fields:
        value = getattr(instance, field_.attname, None)
        if field_.name not in exclude and isinstance(value, str):
            problem = limits.storable_text_problem(value)
            if problem:
                errors[field_.name] = [f"The text {problem}."]
    if errors:
        raise ValidationError(errors)


def shop_channel_register(
    *,
    token: str,
    name: str,
    webhook_secret: str,
    pickup_lat: float,
    pickup_lon: float,
    actor: Actor,
    pickup_address: str = "",
    admin_api_url: str = "",
    admin_api_token: str = "",
) -> tuple[ShopChannel, bool]:
    """Register a shop channel, or update it when the token is known; returns (channel, created)."""
    if not token.strip() or not name.strip():
        raise InvalidInput("token and name must not be empty")
    if len(webhook_secret) < 16:
        raise InvalidInput("the webhook secret must be at least 16 characters")
    if not (-90 <= pickup_lat <= 90 and -180 <= pickup_lon <= 180):
        raise InvalidInput("the pickup must be a latitude within -90..90 and a longitude within -180..180")
    values = {
        "name": name,
        "webhook_secret": webhook_secret,
        "pickup_lat": pickup_lat,
        "pickup_lon": pickup_lon,
        "pickup_address": pickup_address,
        "is_active": True,
    }
    if admin_api_url:
        outbound_url_check(admin_api_url, field="admin_api_url")
        values.update(admin_api_url=admin_api_url, admin_api_token=admin_api_token)
    _valid_or_refuse(ShopChannel(token=token, **values), exclude=[])
    with transaction.atomic():
        channel, created = ShopChannel.objects.update_or_create(token=token, defaults=values)
        audit_record(
            f"shopchannel.{'created' if created else 'updated'}",
            actor=actor,
            subject_type="shopchannel",
            subject_id=channel.pk,
            after={**{k: ("***" if k in AUDIT_HIDDEN_FIELDS else v) for k, v in values.items()}, "token": token},
        )
    return channel, created
