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

from django.db import connection

from audit.actors import SYSTEM
from audit.services import audit_record_many
from dispatch import services as lifecycle
from dispatch.clock import database_datetime
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
        query, in SQL text: every decision asks it): who declined it or let it lapse, and who
        lost it by reassignment."""
        offers, reassignments, drivers = (model._meta.db_table for model in (Offer, Reassignment, Driver))
        missed_states = list(Offer.MISSED_STATES)
        states = ", ".join(["%s"] * len(missed_states))
        sql = (
            f"SELECT o.driver_id, d.name, o.state, o.answered_at FROM {offers} o LEFT JOIN {drivers} d ON d.id = o.driver_id "  # noqa: S608 (names only)
            f"WHERE o.order_id = %s AND o.state IN ({states}) "
            f"UNION ALL SELECT r.driver_id, d.name, CAST(%s AS TEXT), r.at FROM {reassignments} r LEFT JOIN {drivers} d ON d.id = r.driver_id "
            "WHERE r.order_id = %s ORDER BY 4 DESC LIMIT %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [order_id, *missed_states, REASSIGNED_AWAY, order_id, TRACE_EXTRA_CANDIDATES])
            past = cursor.fetchall()
        for driver_id, name, state, at in past:
            reason = MISSED_REASON.get(str(state), str(state))
            when = database_datetime(at).isoformat() if at else None
            self.rows.append({"driver": driver_id, "name": name, "rank": None, "result": "skipped", "reason": reason, "at": when})

    def _basis(self, driver: Driver) -> dict[str, Any]:
        # The candidate search gives each driver its distance, None without a fresh position
        # (dispatch.selectors.candidate_drivers decides what "fresh" is).
        distance = driver.distance_m  # type: ignore[attr-defined]
        idle_s = (self.now - driver.idle_since).total_seconds() if driver.idle_since else None
        return {
            "by": "nearest" if distance is not None else "idle_longest",
            "distance_m": round(distance) if distance is not None else None,
            "idle_s": max(0, round(idle_s)) if idle_s is not None else None,
        }

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
