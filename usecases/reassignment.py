"""Automatic reassignment (v2_auto_reassign), and the escalation sweep built around it."""

from datetime import datetime, timedelta

from audit.actors import SYSTEM
from dispatch.clock import database_now
from dispatch.errors import IllegalTransition, NotFound
from dispatch.models import Order, Reassignment
from escalation import selectors as escalation_selectors
from escalation import services as escalation_services
from escalation.models import AlertKind
from rollout.models import Feature
from rollout.selectors import feature_enabled_for
from usecases.orders import order_reassign


def order_reassign_or_escalate(*, order_id: int, driver_id: int, reason: str, now: datetime, policies: escalation_selectors.Policies | None = None) -> bool:
    """An order not yet picked up whose driver went offline or silent, or missed the pickup:
    reassign it when the switch is on for that driver and automatic reassignments are left;
    escalate it when they ran out. With the switch off the order stays (v1), and the pickup
    limit escalates it. `driver_id` is the driver the caller found holding the order: if
    someone else holds it by now (another sweep got there first), nothing happens. Returns
    whether it was reassigned."""
    policies = policies or escalation_selectors.Policies()
    order = Order.objects.select_related("driver").filter(pk=order_id, status=Order.Status.ASSIGNED, driver_id=driver_id).first()
    if order is None or order.driver is None or not feature_enabled_for(Feature.AUTO_REASSIGN, order.driver):
        return False
    if order.limits_extended_until is not None and order.limits_extended_until > now:
        return False
    if order.reassign_count >= policies.limit(order.zone_id, "max_reassignments"):
        assert order.assigned_at is not None
        due = escalation_selectors.Due(
            order.pk,
            order.code,
            order.zone_id,
            AlertKind.REASSIGN_LIMIT,
            order.assigned_at,
            {"reassignments": order.reassign_count, "reason": reason, "driver": order.driver_id},
        )
        escalation_services.escalation_open(due=due, now=now, policies=policies)
        return False
    try:
        # Compare-and-set on the holder, under the order's lock: of two sweeps, one reassigns.
        order_reassign(order_id=order.pk, reason=reason, actor=SYSTEM, driver_id=driver_id, now=now)
    except (IllegalTransition, NotFound):
        return False  # picked up, cancelled or reassigned meanwhile
    return True


def driver_orders_reassign(*, driver_id: int, reason: str, now: datetime | None = None) -> int:
    """The driver went offline (or silent): their orders not yet picked up go to others."""
    now = now or database_now()
    policies = escalation_selectors.Policies()
    order_ids = list(Order.objects.filter(driver_id=driver_id, status=Order.Status.ASSIGNED).values_list("pk", flat=True))
    return sum(order_reassign_or_escalate(order_id=order_id, driver_id=driver_id, reason=reason, now=now, policies=policies) for order_id in order_ids)


def reassign_orders_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Sweep: missed pickups, and orders still held by drivers who went offline (the backstop
    of the reassignment scheduled when they went offline, if that was lost)."""
    now = now or database_now()
    policies = escalation_selectors.Policies()
    smallest = timedelta(seconds=policies.smallest("pickup_limit_s"))
    assigned = Order.objects.filter(status=Order.Status.ASSIGNED)
    lapsed = assigned.filter(assigned_at__lte=now - smallest).order_by("assigned_at").values_list("pk", "driver_id", "zone_id", "assigned_at")[:limit]
    reassigned = 0
    for order_id, driver_id, zone_id, assigned_at in list(lapsed):
        if assigned_at is not None and assigned_at <= now - timedelta(seconds=policies.limit(zone_id, "pickup_limit_s")):
            reassigned += order_reassign_or_escalate(
                order_id=order_id, driver_id=driver_id, reason=Reassignment.Reason.MISSED_PICKUP, now=now, policies=policies
            )
    held_by_offline = assigned.filter(driver__availability="offline").values_list("pk", "driver_id")[:limit]
    for order_id, driver_id in list(held_by_offline):
        reassigned += order_reassign_or_escalate(order_id=order_id, driver_id=driver_id, reason=Reassignment.Reason.DRIVER_OFFLINE, now=now, policies=policies)
    return reassigned


def escalate_orders_due(*, now: datetime | None = None) -> int:
    """The escalation sweep: reassign what the machine can repair, then escalate what it cannot,
    then climb the levels nobody acknowledged, then close what resolved itself.

    One `now` (the database's clock) for all four, so an order due for reassignment is
    reassigned rather than escalated in the same run.
    """
    now = now or database_now()
    return (
        reassign_orders_due(now=now)
        + escalation_services.open_escalations_due(now=now)
        + escalation_services.raise_escalations_due(now=now)
        + escalation_services.escalations_resolve_moot(now=now)
    )
