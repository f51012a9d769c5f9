"""Reads of the escalation sweeps and pages: policies in effect, what is due, what is open.

Each trigger is one query over a partial index of its deadline (see `Order.Meta.indexes`),
filtered by the smallest limit of any zone and then by each zone's own limit, so a sweep
reads the orders that are due or nearly so, never the finished ones that make up the table.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce

from dispatch.models import Order
from escalation.models import AlertKind, AlertRoute, Escalation, EscalationLevel, EscalationPolicy, NotificationChannel, Team
from offers.models import Offer

W = Order.WAITING_STATUSES

# In which statuses of its order each trigger still means something; outside them the
# escalation resolves itself.
APPLIES_IN: dict[str, tuple[str, ...]] = {
    AlertKind.ORDER_UNASSIGNED: W,
    AlertKind.ORDER_NO_CANDIDATES: W,
    AlertKind.OFFERS_MISSED: W,
    AlertKind.PICKUP_OVERDUE: (Order.Status.ASSIGNED,),
    AlertKind.REASSIGN_LIMIT: (Order.Status.ASSIGNED,),
    AlertKind.DELIVERY_OVERDUE: (Order.Status.PICKED_UP,),
    AlertKind.DRIVER_SILENT: Order.ACTIVE_STATUSES,
    AlertKind.ORDER_PREDICTED_LATE: Order.ACTIVE_STATUSES,
    AlertKind.HANDOVER_CODE_FAILED: (Order.Status.PICKED_UP,),
}


@dataclass(frozen=True)
class Due:
    """An order whose trigger has fired: the escalation to open."""

    order_id: int
    order_code: str
    zone_id: int | None
    trigger: str
    episode_started_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


class Policies:
    """The policy of every zone, read once per sweep: zones without their own use the default."""

    def __init__(self) -> None:
        policies = list(EscalationPolicy.objects.prefetch_related("levels__team"))
        self.default = next((p for p in policies if p.is_default), None) or EscalationPolicy(is_default=True)
        self.by_zone = {p.zone_id: p for p in policies if not p.is_default}

    def for_zone(self, zone_id: int | None) -> EscalationPolicy:
        return self.by_zone.get(zone_id, self.default) if zone_id is not None else self.default

    def limit(self, zone_id: int | None, name: str) -> int:
        return self.for_zone(zone_id).limit(name)

    def smallest(self, name: str) -> int:
        return min([self.default.limit(name), *(p.limit(name) for p in self.by_zone.values())])

    def levels(self, zone_id: int | None) -> list[EscalationLevel]:
        """The zone's levels in order: its policy's own, else the default policy's (a policy
        may set limits only). No levels at all: the alert's owner is told, once."""
        for policy in (self.for_zone(zone_id), self.default):
            if policy.pk is not None:
                levels = sorted(policy.levels.all(), key=lambda level: level.level)
                if levels:
                    return levels
        return []


def level_team(levels: list[EscalationLevel], level: int, trigger: str) -> Team | None:
    """Who is told at this level: the level's team, or else the owner of the alert."""
    for candidate in levels:
        if candidate.level == level and candidate.team is not None:
            return candidate.team
    route = AlertRoute.objects.select_related("team").filter(alert=trigger).first()
    return route.team if route else None


def next_level_at(levels: list[EscalationLevel], level: int, opened_at: datetime) -> datetime | None:
    """When the level after `level` is due, counted from the opening; None at the top."""
    for candidate in levels:
        if candidate.level > level:
            return opened_at + timedelta(seconds=candidate.after_s)
    return None


def team_channels(team: Team | None) -> list[NotificationChannel | None]:
    """The team's active channels; None stands for the default log channel."""
    if team is None:
        return [None]
    channels: list[NotificationChannel | None] = list(team.channels.filter(is_active=True))
    return channels or [None]


def _not_escalated(trigger: str, episode_field: str) -> Exists:
    return Exists(Escalation.objects.filter(order=OuterRef("pk"), trigger=trigger, episode_started_at=OuterRef(episode_field)))


def _not_extended(now: datetime) -> Q:
    return Q(limits_extended_until__isnull=True) | Q(limits_extended_until__lte=now)


def _due(
    policies: Policies, now: datetime, trigger: str, limit_name: str, deadline_field: str, queryset: QuerySet[Order], episode_field: str | None = None
) -> Iterator[Due]:
    """Orders whose `deadline_field` lies more than their zone's limit before `now`."""
    episode_field = episode_field or deadline_field
    smallest = timedelta(seconds=policies.smallest(limit_name))
    rows = (
        queryset.filter(_not_extended(now), **{f"{deadline_field}__lte": now - smallest})
        .exclude(_not_escalated(trigger, episode_field))
        .values("pk", "code", "zone_id", deadline_field, episode_field)
    )
    for row in rows:
        limit_s = policies.limit(row["zone_id"], limit_name)
        if row[deadline_field] <= now - timedelta(seconds=limit_s):
            yield Due(row["pk"], row["code"], row["zone_id"], trigger, row[episode_field], {"limit_s": limit_s, "since": row[deadline_field].isoformat()})


def escalations_due(now: datetime, policies: Policies | None = None) -> list[Due]:
    """Every order whose trigger fired and that has no escalation for this episode yet."""
    policies = policies or Policies()
    orders = Order.objects.all()
    due = [
        *_due(policies, now, AlertKind.ORDER_UNASSIGNED, "unassigned_limit_s", "status_changed_at", orders.filter(status__in=W)),
        *_due(policies, now, AlertKind.ORDER_NO_CANDIDATES, "no_candidates_limit_s", "out_of_candidates_at", orders.filter(status__in=W)),
        *_due(
            policies,
            now,
            AlertKind.PICKUP_OVERDUE,
            "pickup_limit_s",
            "assigned_at",
            # Orders whose reassignments ran out already have their escalation for this episode.
            orders.filter(status=Order.Status.ASSIGNED).exclude(_not_escalated(AlertKind.REASSIGN_LIMIT, "assigned_at")),
        ),
        *_due(policies, now, AlertKind.DELIVERY_OVERDUE, "delivery_grace_s", "promised_at", orders.filter(status=Order.Status.PICKED_UP)),
        *_due(
            policies,
            now,
            AlertKind.DRIVER_SILENT,
            "driver_silent_limit_s",
            "driver__last_heartbeat_at",
            # Only apps that send heartbeats (v2) can be judged by silence.
            orders.filter(status__in=Order.ACTIVE_STATUSES, driver__v2_connected_at__isnull=False),
        ),
        *_offers_missed_due(policies, now),
        *_predicted_late_due(policies, now),
        *_handover_failed_due(now),
    ]
    return due


def _predicted_late_due(policies: Policies, now: datetime) -> Iterator[Due]:
    """Orders held by a driver whose last kept arrival estimate (at pickup, else at assignment:
    eta.OrderEta) is more than the zone's grace past their promised time; once an assignment."""
    trigger = AlertKind.ORDER_PREDICTED_LATE
    smallest = timedelta(seconds=policies.smallest("predicted_late_grace_s"))
    rows = (
        Order.objects.filter(_not_extended(now), status__in=Order.ACTIVE_STATUSES, promised_at__isnull=False)
        .annotate(predicted_at=Coalesce("eta__at_pickup", "eta__at_assignment"))
        .filter(predicted_at__gt=F("promised_at") + smallest)
        .exclude(_not_escalated(trigger, "assigned_at"))
        .values("pk", "code", "zone_id", "assigned_at", "promised_at", "predicted_at")
    )
    for row in rows:
        grace_s = policies.limit(row["zone_id"], "predicted_late_grace_s")
        promised_at, predicted_at, assigned_at = row["promised_at"], row["predicted_at"], row["assigned_at"]
        if promised_at is None or predicted_at is None or assigned_at is None:
            continue  # the query leaves none; the types do not know it
        if predicted_at > promised_at + timedelta(seconds=grace_s):
            detail = {"limit_s": grace_s, "promised_at": promised_at.isoformat(), "predicted_at": predicted_at.isoformat()}
            yield Due(row["pk"], row["code"], row["zone_id"], trigger, assigned_at, detail)


def _handover_failed_due(now: datetime) -> Iterator[Due]:
    """Picked-up orders whose handover code was entered wrong as often as it may be: the
    driver cannot deliver them without ops; once a pickup."""
    trigger = AlertKind.HANDOVER_CODE_FAILED
    rows = (
        Order.objects.filter(status=Order.Status.PICKED_UP, handover_code__failed_attempts__gte=settings.DISPATCH_HANDOVER_MAX_ATTEMPTS)
        .exclude(_not_escalated(trigger, "picked_up_at"))
        .values("pk", "code", "zone_id", "picked_up_at", "handover_code__failed_attempts")
    )
    for row in rows:
        if row["picked_up_at"] is not None:  # always, for a picked-up order
            yield Due(row["pk"], row["code"], row["zone_id"], trigger, row["picked_up_at"], {"failed_attempts": row["handover_code__failed_attempts"]})


def _offers_missed_due(policies: Policies, now: datetime) -> Iterator[Due]:
    smallest = policies.smallest("max_offer_misses")
    missed = Q(offers__state__in=Offer.MISSED_STATES)
    rows = (
        Order.objects.filter(_not_extended(now), status__in=W)
        .exclude(_not_escalated(AlertKind.OFFERS_MISSED, "received_at"))
        .annotate(misses=Count("offers", filter=missed))
        .filter(misses__gte=smallest)
        .values("pk", "code", "zone_id", "received_at", "misses")
    )
    for row in rows:
        limit = policies.limit(row["zone_id"], "max_offer_misses")
        if row["misses"] >= limit:
            yield Due(row["pk"], row["code"], row["zone_id"], AlertKind.OFFERS_MISSED, row["received_at"], {"limit": limit, "misses": row["misses"]})


def escalation_still_applies(escalation: Escalation) -> bool:
    """Does the escalation's condition still hold? (Its order's status; a silent driver not heard since.)"""
    order = escalation.order
    if order.status not in APPLIES_IN[escalation.trigger]:
        return False
    if escalation.trigger == AlertKind.DRIVER_SILENT:
        driver = order.driver
        heard_at = driver.last_heartbeat_at if driver else None
        return heard_at is None or heard_at <= escalation.episode_started_at
    return True


def open_escalation_counts() -> dict[tuple[int, str], int]:
    """Unresolved escalations by (level, state)."""
    rows = Escalation.objects.filter(state__in=Escalation.UNRESOLVED_STATES).values("level", "state").annotate(n=Count("id"))
    return {(row["level"], row["state"]): row["n"] for row in rows}
