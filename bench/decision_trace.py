"""What recording a dispatch decision costs: the same decisions with the trace written and with
it left out, in alternating blocks (the machine is shared and noisy), as a ratio.

A decision here is what the expiry sweep and every answer run again and again: an order that
was declined twice is offered to the next driver of a zone of 200 (fan-out 1), so the record
holds the ranked candidates (fan-out plus ten) and the two drivers its past left out. Each
decision is its own transaction, as in production. Target (issue 11): at most 10 % more.
"""

import os
import statistics
import time
import uuid
from contextlib import contextmanager
from typing import Any

from bench.harness import prepare_database, write_result

DRIVERS = int(os.environ.get("BENCH_TRACE_DRIVERS", "200"))
DECISIONS = int(os.environ.get("BENCH_TRACE_DECISIONS", "100"))
BLOCKS = int(os.environ.get("BENCH_TRACE_BLOCKS", "6"))
TARGET_RATIO = 1.10


def setup() -> tuple[Any, list[Any]]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from audit.actors import Actor
    from dispatch.models import Driver, Zone
    from dispatch.services import shop_channel_register
    from rollout.services import rollout_set
    from usecases.switches import switch_set

    actor = Actor.system("bench")
    channel, _ = shop_channel_register(token="trace", name="Trace", webhook_secret="trace-secret-0123456789", pickup_lat=52.5, pickup_lon=13.4, actor=actor)
    zone = Zone.objects.create(name="Trace", slug="trace", postal_code_prefixes=["1"])
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"trace-{i}") for i in range(DRIVERS)])
    now = timezone.now()
    drivers = Driver.objects.bulk_create(
        [
            Driver(
                user=u,
                name=f"Driver {i}",
                phone=f"+3{i:07d}",
                capacity=1000,
                availability="available",
                v2_connected_at=now,
                app_version="2.5.0",
                last_lat=52.5 + (i % 20) * 0.001,
                last_lon=13.4 + (i // 20) * 0.001,
                last_position_at=now,
            )
            for i, u in enumerate(users)
        ]
    )
    for driver in drivers:
        driver.zones.add(zone)
    switch_set(name="v2_offers", active=True, actor=actor)
    rollout_set(feature="v2_offers", percentage=100, actor=actor)
    return channel, drivers


def declined_twice(channel: Any, drivers: list[Any]) -> list[int]:
    """Orders each declined by two drivers, waiting for their next decision (no offer out)."""
    from audit.actors import Actor
    from dispatch.models import Order
    from dispatch.services import OrderIntake
    from offers.models import Offer
    from usecases import intake

    order_ids = []
    for n in range(DECISIONS):
        order, _ = intake.order_receive(
            channel=channel,
            intake=OrderIntake(
                vendure_order_id=uuid.uuid4().hex,
                code=f"TRACE-{n}",
                vendure_state="PaymentSettled",
                currency="EUR",
                total_minor=1,
                delivery_fee_minor=1,
                dropoff_postal_code="10115",
            ),
            actor=Actor.system("bench"),
        )
        order_ids.append(order.pk)
    from django.utils import timezone

    now = timezone.now()
    Offer.objects.bulk_create(
        [
            Offer(order_id=order_id, driver=drivers[k], state="declined", created_at=now, expires_at=now, answered_at=now)
            for order_id in order_ids
            for k in (0, 1)
        ]
    )
    Order.objects.filter(pk__in=order_ids).update(status="unassigned")
    return order_ids


@contextmanager
def trace_left_out() -> Any:
    """The same decisions with the record's work skipped: nothing ranked is noted, no past is
    read, and of the events only those of the offers made are written (every decision writes
    them, record or not: they are the offers' own trail, not the record's)."""
    from audit.services import audit_record_many
    from usecases import decision_trace

    cls = decision_trace.DecisionTrace
    saved = cls.considered, cls.passed_over, cls.record

    def considered(self: Any, driver: Any, result: str, reason: str = "") -> None:
        if result == "offered":
            self.offered += 1

    def offers_events_only(self: Any, outcome: str) -> None:
        audit_record_many(self.audit_entries)
        self.audit_entries = []

    cls.considered, cls.passed_over, cls.record = considered, lambda self, order_id: None, offers_events_only  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls.considered, cls.passed_over, cls.record = saved  # type: ignore[method-assign]


def block(channel: Any, drivers: list[Any], traced: bool) -> float:
    from offers.models import Offer
    from usecases.dispatching import order_dispatch

    order_ids = declined_twice(channel, drivers)
    started = time.perf_counter()
    if traced:
        for order_id in order_ids:
            order_dispatch(order_id=order_id)
    else:
        with trace_left_out():
            for order_id in order_ids:
                order_dispatch(order_id=order_id)
    elapsed = (time.perf_counter() - started) / len(order_ids)
    Offer.objects.filter(order_id__in=order_ids, state="pending").update(state="withdrawn", withdrawn_reason="order_cancelled")
    return elapsed


def run() -> dict[str, Any]:
    import logging

    prepare_database()
    from audit.models import AuditEvent

    for name in ("audit.events", "offers.push", "offers.notify"):
        logging.getLogger(name).setLevel(logging.ERROR)
    channel, drivers = setup()
    block(channel, drivers, True)  # warm both paths up
    block(channel, drivers, False)
    traced: list[float] = []
    bare: list[float] = []
    for n in range(BLOCKS):
        first = n % 2 == 0
        for with_trace in (first, not first):
            (traced if with_trace else bare).append(block(channel, drivers, with_trace))
    traced_ms, bare_ms = statistics.median(traced) * 1000, statistics.median(bare) * 1000
    sample = AuditEvent.objects.filter(kind="dispatch.decided").latest("id")
    ratio = traced_ms / bare_ms
    report: dict[str, Any] = {
        "benchmark": f"a dispatch decision (an order declined twice, offered to the next of {DRIVERS} drivers) with its record written and left out",
        "decisions_per_block": DECISIONS,
        "blocks": BLOCKS,
        "per_decision_ms": {"with_trace_median": traced_ms, "without_trace_median": bare_ms},
        "candidates_recorded": len(sample.data["candidates"]),
        "ratio": {"with_over_without": ratio},
        "target": {"with_over_without_at_most": TARGET_RATIO, "passed": ratio <= TARGET_RATIO},
    }
    write_result("decision_trace", report)
    print(f"decision trace: {BLOCKS} blocks of {DECISIONS} decisions each way, {report['candidates_recorded']} candidates recorded per decision")
    print(
        f"  per decision: with the trace {traced_ms:.2f} ms, without {bare_ms:.2f} ms: x{ratio:.3f} (target <= x{TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'})"
    )
    return report
