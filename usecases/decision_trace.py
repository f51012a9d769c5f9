"""Why this driver: what one dispatch decision saw, recorded with it.

Each decision that offers or assigns an order, or first finds nobody for it, writes one audit
event `dispatch.decided` (in the decision's transaction, one INSERT) with the candidates it
considered best first (up to the zone's fan-out plus ten): each driver's rank, distance to the
pickup, time idle, what they got (an offer, the order, nothing) and why not (declined before,
let it lapse, in another offer, at capacity, not in the rollout, app speaks v1, reassigned
away). Support reads it in the order's timeline; ops on the order's page in admin.
"""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import CharField, Value

from audit.actors import SYSTEM
from audit.services import audit_record_many
from dispatch import services as lifecycle
from dispatch.geometry import distance_m
from dispatch.models import Driver, Order, Reassignment
from offers.models import Offer

# Candidates looked at beyond the fan-out, so the record shows who came next and why they
# did not get it.
TRACE_EXTRA_CANDIDATES = 10
# How candidates are ranked (dispatch.selectors.candidate_drivers).
STRATEGY = "nearest_then_idle_longest"
REASSIGNED_AWAY = "reassigned_away"
MISSED_REASON = {str(Offer.State.DECLINED): "declined", str(Offer.State.EXPIRED): "lapsed"}


class DecisionTrace:
    """The candidates of one decision, as the decision goes through them."""

    def __init__(self, *, order: Order, now: datetime) -> None:
        self.order = order
        self.now = now
        self.rows: list[dict[str, Any]] = []
        self.offered = 0
        self.ranked = 0
        self.zone_fanout = order.zone.offer_fanout if order.zone else 1
        # The audit events of the offers the decision made, written with its own record.
        self.audit_entries: list[dict[str, Any]] = []

    def considered(self, driver: Driver, result: str, reason: str = "") -> None:
        """A ranked candidate and what they got: offered, assigned, skipped (with why), not needed."""
        if result == "offered":
            self.offered += 1
        self.ranked += 1
        if self.ranked > self.zone_fanout + TRACE_EXTRA_CANDIDATES:
            return  # the record keeps the first window; a decision that read on is rare
        row = {"driver": driver.pk, "name": driver.name, "rank": self.ranked, **self._basis(driver), "result": result}
        if reason:
            row["reason"] = reason
        self.rows.append(row)

    def passed_over(self, order_id: int) -> None:
        """The drivers left out before ranking because of this order's past, latest first (one
        query): who declined it or let it lapse, and who lost it by reassignment."""
        # Each side without its model's default ordering: SQLite refuses ORDER BY inside a UNION.
        missed = (
            Offer.objects.filter(order_id=order_id, state__in=Offer.MISSED_STATES).order_by().values_list("driver_id", "driver__name", "state", "answered_at")
        )
        lost = (
            Reassignment.objects.filter(order_id=order_id)
            .order_by()
            .annotate(why=Value(REASSIGNED_AWAY, output_field=CharField()))
            .values_list("driver_id", "driver__name", "why", "at")
        )
        for driver_id, name, state, at in missed.union(lost, all=True).order_by("-answered_at")[:TRACE_EXTRA_CANDIDATES]:
            reason = MISSED_REASON.get(str(state), str(state))
            self.rows.append({"driver": driver_id, "name": name, "rank": None, "result": "skipped", "reason": reason, "at": at.isoformat() if at else None})

    def _basis(self, driver: Driver) -> dict[str, Any]:
        distance = getattr(driver, "distance_m", None)
        if distance is None and self._has_fresh_position(driver):
            distance = distance_m(self.order.pickup_lat, self.order.pickup_lon, driver.last_lat, driver.last_lon)  # type: ignore[arg-type]
        idle_s = (self.now - driver.idle_since).total_seconds() if driver.idle_since else None
        return {
            "by": "nearest" if distance is not None else "idle_longest",
            "distance_m": round(distance) if distance is not None else None,
            "idle_s": max(0, round(idle_s)) if idle_s is not None else None,
        }

    def _has_fresh_position(self, driver: Driver) -> bool:
        if driver.last_lat is None or driver.last_lon is None or driver.last_position_at is None:
            return False
        return (self.now - driver.last_position_at).total_seconds() <= settings.DISPATCH_POSITION_MAX_AGE_S

    def record(self, outcome: str) -> None:
        """The decision's record, after the events of the offers it made, in one INSERT."""
        zone = self.order.zone
        decided = lifecycle.order_audit_entry(
            self.order,
            "dispatch.decided",
            actor=SYSTEM,
            after={"outcome": outcome},
            strategy=STRATEGY,
            fanout=zone.offer_fanout if zone else None,
            candidates=self.rows,
        )
        audit_record_many([*self.audit_entries, decided])
        self.audit_entries = []
