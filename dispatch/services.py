"""The ground floor: every write to orders and drivers' capacity, and the reference data.

One function, `order_move`, moves an order from one status to another (lock, compare-and-
set, timestamps, capacity, audit); each public move is a thin caller naming the statuses it
may start from. These run inside the caller's transaction and know nothing of the apps built
on them (offers, escalations, the shop's reports): the use cases in `usecases/` compose them,
in one transaction, and are the entry points. Rows are locked through `dispatch.locks`, in
one fixed order (orders, then drivers, then offers), so concurrent moves never deadlock.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from audit.actors import SYSTEM, Actor
from audit.services import audit_record
from dispatch import limits, selectors
from dispatch.errors import DriverBusy, DriverUnavailable, IllegalTransition, InvalidInput, NotFound, OverCapacity
from dispatch.locks import driver_capacity_take, order_lock, order_locked
from dispatch.models import Driver, Order, Reassignment, ShopChannel
from dispatch.outbound import outbound_url_check
from dispatch.rows import row_insert_unless_conflict, row_update
from observability import metrics

logger = logging.getLogger(__name__)

_DRIVERS = Driver._meta.db_table

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


def order_audit_entry(
    order: Order, kind: str, *, actor: Actor, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None, **data: Any
) -> dict[str, Any]:
    """An audit event about an order, filed under its id, code, zone and driver for search
    (the fields of `audit_record`, for a caller who writes several at once)."""
    return {
        "kind": kind,
        "actor": actor,
        "subject_type": "order",
        "subject_id": order.pk,
        "order_id": order.pk,
        "order_code": order.code,
        "driver_id": (after or {}).get("driver") or (before or {}).get("driver") or order.driver_id,
        "zone_id": order.zone_id,
        "before": before,
        "after": after,
        "data": data,
    }


def order_audit_record(
    order: Order, kind: str, *, actor: Actor, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None, **data: Any
) -> None:
    """An audit event about an order, filed under its id, code, zone and driver for search."""
    audit_record(**order_audit_entry(order, kind, actor=actor, before=before, after=after, **data))


def _snapshot(status: str, driver_id: int | None) -> dict[str, Any]:
    return {"status": status, "driver": driver_id}


def _capacity_release(driver_id: int, now: datetime) -> None:
    """Give back one unit of the driver's capacity; a driver left with nothing is idle from now."""
    idle_since = Driver._meta.get_field("idle_since").get_db_prep_save(now, connection=connection)
    with connection.cursor() as cursor:  # every delivery: in SQL text (dispatch.rows says why)
        cursor.execute(
            f"UPDATE {_DRIVERS} SET active_order_count = active_order_count - 1, "  # noqa: S608 (names only)
            "idle_since = CASE WHEN active_order_count = 1 THEN %s ELSE idle_since END WHERE id = %s AND active_order_count > 0",
            [idle_since, driver_id],
        )


def _capacity_take(driver_id: int, now: datetime, *, wait_for_driver: bool = True) -> Driver:
    """Take one unit of the driver's capacity, or refuse: the conditional UPDATE is the lock.
    Returns the driver's row as the UPDATE left it.

    The driver's account is locked and read first: a deactivation in flight commits before we
    read it, so a deactivated driver takes no work, however it is given (v1, an accept, ops by
    hand), and however they were deactivated. With `wait_for_driver=False` a driver another
    transaction holds is refused (DriverBusy) instead of waited for.
    """
    idle_since = Driver._meta.get_field("idle_since").get_db_prep_save(now, connection=connection)
    taking = driver_capacity_take(driver_id, idle_since=idle_since, wait_for_driver=wait_for_driver)
    if taking.is_active is None:
        raise NotFound(f"driver {driver_id} does not exist")
    if not taking.is_active:
        raise DriverUnavailable(f"driver {driver_id} is deactivated", driver=driver_id)
    if not taking.is_held:
        raise DriverBusy(f"driver {driver_id} is being decided about elsewhere", driver=driver_id)
    if taking.driver is None:
        raise OverCapacity(f"driver {driver_id} has no free capacity", driver=driver_id)
    return taking.driver


@dataclass(frozen=True)
class OrderMove:
    """What one move did: the order as it is now, the status it left, and the driver who held
    it before (None for a waiting order)."""

    order: Order
    before: str
    driver_before: int | None
    # The driver it went to, as their row was when the move took their capacity (an assignment).
    driver_after: Driver | None = None

    @property
    def after(self) -> str:
        return self.order.status

    @property
    def freed_driver_id(self) -> int | None:
        """The driver who got a unit of capacity back by this move, if any."""
        return self.driver_before if Order.frees_capacity(self.before, self.after) else None


def order_move(
    order_id: int,
    to: str,
    *,
    from_statuses: tuple[str, ...],
    actor: Actor,
    now: datetime,
    kind: str | None = None,
    to_driver_id: int | None = None,
    only_driver_id: int | None = None,
    fields: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    locked: Order | None = None,
    wait_for_driver: bool = True,
) -> OrderMove:
    """The one function that moves an order from one status to another.

    Inside the caller's transaction: locks the order's row, checks the move is allowed from
    what the row says now (a racing change committed first, and we decide on what it left),
    writes the status and its timestamp by compare-and-set, takes capacity from the driver it
    goes to (`to_driver_id`, for an assignment) or gives it back to the driver it leaves, and
    records the audit event. `only_driver_id` restricts the move to the order's own driver:
    anyone else is told the order does not exist, so drivers cannot probe each other's orders.
    `locked` is the order's row as the caller read it under its lock, which saves a read.
    `wait_for_driver=False` (a dispatch decision) refuses with DriverBusy instead of waiting for
    a driver another transaction holds (see `dispatch.locks`).
    """
    order = locked if locked is not None and locked.pk == order_id else order_lock(order_id)
    if order is None or (only_driver_id is not None and order.driver_id != only_driver_id):
        raise NotFound(f"order {order_id} not found")
    before, driver_before = order.status, order.driver_id
    if before not in from_statuses or to not in ORDER_TRANSITIONS[before]:
        raise IllegalTransition(f"order {order_id}", before, to)
    changes: dict[str, Any] = {"status": to, "status_changed_at": now, STATUS_TIME_FIELD[to]: now}
    if to == S.ASSIGNED:
        changes.update(driver_id=to_driver_id, waiting_reason="", out_of_candidates_at=None)
    elif to == S.UNASSIGNED:
        changes["driver_id"] = None  # a finished or cancelled order keeps its driver, for the record
    changes.update(fields or {})
    driver_after = None
    if to == S.ASSIGNED:
        assert to_driver_id is not None
        driver_after = _capacity_take(to_driver_id, now, wait_for_driver=wait_for_driver)  # first: a refusal leaves nothing written
    # The row is locked, so the compare-and-set cannot lose; it stays the guard all the same.
    if not row_update(Order, order_id, changes, expected={"status": before}):
        raise IllegalTransition(f"order {order_id}", before, to)
    for name, value in changes.items():
        setattr(order, name, value)
    if Order.frees_capacity(before, to) and driver_before is not None:
        _capacity_release(driver_before, now)
    data = dict(data or {})
    if driver_before is not None and to == S.UNASSIGNED:
        data["from_driver"] = driver_before
    order_audit_record(order, kind or f"order.{to}", actor=actor, before=_snapshot(before, driver_before), after=_snapshot(to, order.driver_id), **data)
    if to == S.ASSIGNED:
        metrics.order_assigned(order.zone_id, (now - order.received_at).total_seconds())
    if to in Order.TERMINAL_STATUSES:
        metrics.order_finished(order.zone_id, to)
    return OrderMove(order=order, before=before, driver_before=driver_before, driver_after=driver_after)


# --- Intake ----------------------------------------------------------------------------


def order_receive(*, channel: ShopChannel, intake: OrderIntake, actor: Actor, now: datetime) -> tuple[Order, bool]:
    """Store a shop's order once, in the caller's transaction. Returns (order, created); a
    known order is left as it is."""
    zone = selectors.zone_for_dropoff(intake.dropoff_lat, intake.dropoff_lon, intake.dropoff_postal_code)
    order = Order(
        channel=channel,
        zone=zone,
        pickup_lat=channel.pickup_lat,
        pickup_lon=channel.pickup_lon,
        status=S.RECEIVED,
        status_changed_at=now,
        received_at=now,
        **intake.__dict__,
    )
    if not row_insert_unless_conflict(order):
        # Known already (sent again, or at the same time under another event id): left as it is.
        return Order.objects.get(channel=channel, vendure_order_id=intake.vendure_order_id), False
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
    return order, True


# --- The moves, each naming the statuses it may start from --------------------------------
# Inside the caller's transaction: the use cases (`usecases/`) are the entry points and
# compose these with offers, escalations and the shop's reports.


def order_assign(
    *, order_id: int, driver_id: int, actor: Actor, now: datetime, reason: str, locked: Order | None = None, wait_for_driver: bool = True
) -> OrderMove:
    """Give a waiting order to a driver with free capacity."""
    return order_move(
        order_id,
        S.ASSIGNED,
        from_statuses=Order.WAITING_STATUSES,
        actor=actor,
        now=now,
        to_driver_id=driver_id,
        data={"reason": reason},
        locked=locked,
        wait_for_driver=wait_for_driver,
    )


def order_mark_unassigned(*, order_id: int, reason: str, now: datetime, actor: Actor = SYSTEM, locked: Order | None = None) -> OrderMove:
    """A just-received order found no driver: it waits for the assignment sweep."""
    return order_move(
        order_id, S.UNASSIGNED, from_statuses=(S.RECEIVED,), actor=actor, now=now, fields={"waiting_reason": reason}, data={"reason": reason}, locked=locked
    )


def order_take_back(*, order_id: int, reason: str, actor: Actor, now: datetime, driver_id: int | None = None) -> OrderMove:
    """Take an order not yet picked up from its driver: it waits again, and the driver is on
    record (a `Reassignment` row with the reason) and not offered this order again.

    The one way an order leaves a driver before pickup, whoever takes it (the reassignment
    sweep, ops unassigning or giving it to someone else). `driver_id`, when the caller decided
    about a particular driver, makes it a compare-and-set on the holder: if someone else holds
    the order by now, it is refused as not found. Only automatic reasons count towards the zone's limit
    of automatic reassignments. A picked-up order is refused: the driver holds the goods.
    """
    order = order_locked(order_id)
    fields: dict[str, Any] = {"waiting_reason": reason}
    if reason in Reassignment.AUTOMATIC_REASONS:
        fields["reassign_count"] = order.reassign_count + 1  # read under the order's lock
    move = order_move(
        order_id,
        S.UNASSIGNED,
        from_statuses=(S.ASSIGNED,),
        actor=actor,
        now=now,
        kind=Reassignment.audit_kind(reason),
        only_driver_id=driver_id,
        fields=fields,
        data={"reason": reason},
        locked=order,
    )
    assert move.driver_before is not None
    Reassignment.objects.create(order_id=order_id, driver_id=move.driver_before, reason=reason, at=now)
    metrics.order_reassigned(move.order.zone_id, reason)
    return move


def order_pick_up(*, order_id: int, driver: Driver, now: datetime) -> OrderMove:
    return order_move(order_id, S.PICKED_UP, from_statuses=(S.ASSIGNED,), actor=driver_actor(driver), now=now, only_driver_id=driver.pk)


def order_deliver(*, order_id: int, driver: Driver, now: datetime, proof_note: str = "", proof_photo_ref: str = "") -> OrderMove:
    return order_move(
        order_id,
        S.DELIVERED,
        from_statuses=(S.PICKED_UP,),
        actor=driver_actor(driver),
        now=now,
        only_driver_id=driver.pk,
        fields={"proof_note": proof_note, "proof_photo_ref": proof_photo_ref},
        data={"has_proof_photo": bool(proof_photo_ref)},
    )


def order_fail(*, order_id: int, actor: Actor, reason: str, now: datetime, driver: Driver | None = None) -> OrderMove:
    """The delivery could not be made (customer absent, address wrong...)."""
    return order_move(
        order_id,
        S.FAILED,
        from_statuses=Order.ACTIVE_STATUSES,
        actor=actor,
        now=now,
        only_driver_id=driver.pk if driver else None,
        fields={"failure_reason": reason},
        data={"reason": reason},
    )


def order_cancel(*, order_id: int, actor: Actor, reason: str, now: datetime) -> OrderMove:
    """Cancel an order (by the shop or by ops); its driver, if any, gets the capacity back."""
    return order_move(
        order_id,
        S.CANCELLED,
        from_statuses=(*Order.WAITING_STATUSES, *Order.ACTIVE_STATUSES),
        actor=actor,
        now=now,
        fields={"cancel_reason": reason},
        data={"reason": reason},
    )


def order_out_of_candidates(*, order: Order, now: datetime) -> None:
    """Dispatch found nobody for the order: note since when, once (the escalation sweep reads it)."""
    if order.out_of_candidates_at is not None:
        return
    if Order.objects.filter(pk=order.pk, status=order.status, out_of_candidates_at__isnull=True).update(out_of_candidates_at=now):
        order.out_of_candidates_at = now
        order_audit_record(
            order,
            "order.out_of_candidates",
            actor=SYSTEM,
            before={"status": order.status, "out_of_candidates_at": None},
            after={"status": order.status, "out_of_candidates_at": now.isoformat()},
        )


def order_candidates_found(*, order: Order) -> None:
    """Dispatch found someone again for an order it once found nobody for."""
    if order.out_of_candidates_at is not None:
        Order.objects.filter(pk=order.pk).update(out_of_candidates_at=None)
        order.out_of_candidates_at = None


def order_limits_extend(*, order_id: int, minutes: int, actor: Actor, now: datetime) -> Order:
    """Ops give an order more time: no reassignment or escalation of it before then."""
    from django.conf import settings

    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= settings.ESCALATION_MAX_EXTENSION_MIN:
        raise InvalidInput(f"an extension is 1 to {settings.ESCALATION_MAX_EXTENSION_MIN} minutes", minutes=minutes)
    until = now + timedelta(minutes=minutes)
    order = order_locked(order_id)
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
