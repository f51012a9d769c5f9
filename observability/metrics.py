"""Prometheus metrics: events counted where they happen, state read from the database at scrape.

Events (offers, assignments, webhooks, notifications, sweeps) are counters and histograms,
counted after their transaction commits so a rolled-back change is never counted. They are
multiprocess-safe: with PROMETHEUS_MULTIPROC_DIR set (`manage.py serve` sets it for the ASGI
server, the worker and beat), each process writes its own file and a scrape sums them.

State (orders by status, open escalations, drivers, sockets, sweep lag) is not kept in
process memory at all: a collector reads it from the database at each scrape, so every
process reports the same truth and nothing drifts.
"""

import time
from collections.abc import Callable

from django.conf import settings
from prometheus_client import Counter, Histogram, disable_created_metrics

from dispatch.after_commit import after_commit as commit_hook

# A `_created` twin of every counter doubles the series and says nothing a dashboard uses.
disable_created_metrics()

OFFER_EVENTS = Counter("dispatch_offer_events", "Offers sent, accepted, declined, expired and withdrawn", ["zone", "event"])
ORDER_TIME_TO_ASSIGN = Histogram(
    "dispatch_order_time_to_assign_seconds",
    "From the order's arrival to its assignment to a driver",
    ["zone"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
OFFER_TIME_TO_ANSWER = Histogram(
    "dispatch_offer_time_to_answer_seconds",
    "From an offer to the driver's answer or its lapse",
    ["zone", "answer"],
    buckets=(0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300),
)
ORDERS_FINISHED = Counter("dispatch_orders_finished", "Orders that reached a terminal status", ["zone", "status"])
ORDERS_RECEIVED = Counter("dispatch_orders_received", "Orders received from shops", ["zone"])
WEBHOOKS = Counter("dispatch_webhooks", "Shop webhooks: accepted or refused, and the outcome or error code", ["result", "outcome"])
NOTIFICATIONS = Counter("dispatch_notifications", "Escalation notifications by channel kind and outcome (sent, failed, gave_up)", ["channel", "outcome"])
ETA_ROUTING = Counter("dispatch_eta_routing", "Routing engine calls for arrival estimates: ok, timeout, error, or resting after a failure", ["outcome"])
ESCALATIONS_OPENED = Counter("dispatch_escalations_opened", "Escalations opened", ["zone", "trigger"])
ESCALATIONS_RAISED = Counter("dispatch_escalations_raised", "Escalations raised to a higher level", ["zone", "level"])
REASSIGNMENTS = Counter("dispatch_reassignments", "Orders taken back from a driver automatically", ["zone", "reason"])
SWEEP_DURATION = Histogram(
    "dispatch_sweep_duration_seconds",
    "How long each run of a periodic sweep took",
    ["sweep"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

NO_ZONE = "none"
_zone_slugs: dict[int, str] = {}
_zone_slugs_read_at = 0.0
ZONE_SLUGS_TTL_S = 60.0


def zone_label(zone_id: int | None) -> str:
    """The zone's slug for a label; read from the database at most once a minute."""
    global _zone_slugs_read_at
    if zone_id is None:
        return NO_ZONE
    if zone_id not in _zone_slugs or time.monotonic() - _zone_slugs_read_at > ZONE_SLUGS_TTL_S:
        from dispatch.models import Zone

        _zone_slugs.clear()
        _zone_slugs.update(Zone.objects.values_list("pk", "slug"))
        _zone_slugs_read_at = time.monotonic()
    return _zone_slugs.get(zone_id, str(zone_id))


def after_commit(record: Callable[[], None]) -> None:
    """Count an event once its transaction commits (at once outside a transaction)."""
    if settings.METRICS_ENABLED:
        commit_hook(record)


def offer_event(zone_id: int | None, event: str, answered_after_s: float | None = None) -> None:
    def record() -> None:
        zone = zone_label(zone_id)
        OFFER_EVENTS.labels(zone, event).inc()
        if answered_after_s is not None:
            OFFER_TIME_TO_ANSWER.labels(zone, event).observe(answered_after_s)

    after_commit(record)


def order_assigned(zone_id: int | None, waited_s: float) -> None:
    after_commit(lambda: ORDER_TIME_TO_ASSIGN.labels(zone_label(zone_id)).observe(waited_s))


def order_finished(zone_id: int | None, status: str) -> None:
    after_commit(lambda: ORDERS_FINISHED.labels(zone_label(zone_id), status).inc())


def order_received(zone_id: int | None) -> None:
    after_commit(lambda: ORDERS_RECEIVED.labels(zone_label(zone_id)).inc())


def webhook_outcome(outcome: str, *, is_accepted: bool) -> None:
    if settings.METRICS_ENABLED:
        WEBHOOKS.labels("accepted" if is_accepted else "refused", outcome).inc()


def eta_routing(outcome: str) -> None:
    if settings.METRICS_ENABLED:
        ETA_ROUTING.labels(outcome).inc()


def notification_outcome(channel_kind: str, outcome: str) -> None:
    if settings.METRICS_ENABLED:
        NOTIFICATIONS.labels(channel_kind, outcome).inc()


def escalation_opened(zone_id: int | None, trigger: str) -> None:
    after_commit(lambda: ESCALATIONS_OPENED.labels(zone_label(zone_id), trigger).inc())


def escalation_raised(zone_id: int | None, level: int) -> None:
    after_commit(lambda: ESCALATIONS_RAISED.labels(zone_label(zone_id), str(level)).inc())


def order_reassigned(zone_id: int | None, reason: str) -> None:
    after_commit(lambda: REASSIGNMENTS.labels(zone_label(zone_id), reason).inc())


def sweep_duration(sweep: str, seconds: float) -> None:
    if settings.METRICS_ENABLED:
        SWEEP_DURATION.labels(sweep).observe(seconds)
