"""A whole order lifecycle, step by step: CPU of this process and SQL statements per step.

One cycle: a signed-off webhook event is received (order stored, dispatched: an offer to a v2
driver, audited), the driver accepts, picks up and delivers, each through its use case, on
PostgreSQL. For each step the benchmark reports the median CPU time of this process (user +
system: the Python and ORM work a server or worker spends) and the statements it sent. The
baseline, measured in the same run, is what PostgreSQL needs for one change done bare: a
compare-and-set UPDATE and its audit INSERT in one transaction, from the same process.
Target (issue 11): the whole lifecycle at most 20 ms of one core.
"""

import os
import statistics
import time
import uuid
from collections import Counter
from typing import Any

from bench.harness import StatementCounter, prepare_database, write_result

CYCLES = int(os.environ.get("BENCH_LIFECYCLE_CYCLES", "200"))
TARGET_CPU_MS = 20.0
STEPS = ("receive_and_offer", "accept", "pick_up", "deliver")


def setup() -> tuple[Any, Any]:
    from django.utils import timezone

    from audit.actors import Actor
    from dispatch.models import Driver, Zone
    from dispatch.services import driver_create, shop_channel_register
    from rollout.services import rollout_set
    from usecases.switches import switch_set

    actor = Actor.system("bench")
    channel, _ = shop_channel_register(
        token="lifecycle", name="Lifecycle", webhook_secret="lifecycle-secret-0123", pickup_lat=52.5, pickup_lon=13.4, actor=actor
    )
    Zone.objects.create(name="Lifecycle", slug="lifecycle", postal_code_prefixes=["1"])
    driver, _ = driver_create(name="Bench", phone="+4900", zone_slugs=["lifecycle"], capacity=50, actor=actor)
    Driver.objects.filter(pk=driver.pk).update(availability="available", v2_connected_at=timezone.now(), app_version="2.3.0")
    switch_set(name="v2_offers", active=True, actor=actor)
    rollout_set(feature="v2_offers", percentage=100, actor=actor)
    return channel, Driver.objects.get(pk=driver.pk)


def cycle(channel: Any, driver: Any, counter: StatementCounter, cpu: dict[str, list[float]], statements: dict[str, list[int]]) -> None:
    from offers.models import Offer
    from usecases import intake, offers, orders
    from vendure import sample_payloads

    payload = sample_payloads.event(
        "order.ready_for_delivery", sample_payloads.order_payload(vendure_order_id=uuid.uuid4().hex, code="LIFE", postal_code="10115", lat=52.52, lon=13.405)
    )
    state: dict[str, Any] = {}

    def receive() -> None:
        state["order_id"] = intake.webhook_receive(channel=channel, payload=payload).order_id

    def accept() -> None:
        offer_id = Offer.objects.filter(order_id=state["order_id"], state="pending").values_list("pk", flat=True).get()
        counter.count -= 1  # the benchmark's own lookup of the offer id is not the accept's
        offers.offer_accept(offer_id=offer_id, driver=driver)

    def pick_up() -> None:
        orders.order_pick_up(order_id=state["order_id"], driver=driver)

    def deliver() -> None:
        orders.order_deliver(order_id=state["order_id"], driver=driver)

    for step, run in zip(STEPS, (receive, accept, pick_up, deliver), strict=True):
        counter.count = 0
        started = time.process_time()
        run()
        cpu[step].append((time.process_time() - started) * 1000)
        statements[step].append(counter.count)


def bare_change_ms(rounds: int = 500) -> float:
    """CPU of this process for one compare-and-set UPDATE plus its audit INSERT, committed,
    through a plain psycopg cursor: the floor under any transition."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS bench_cas (id int primary key, state text)")
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS bench_trail (id serial primary key, kind text, data jsonb)")
        cursor.execute("INSERT INTO bench_cas VALUES (1, 'a') ON CONFLICT DO NOTHING")
    raw = connection.connection
    samples = []
    for n in range(rounds):
        before, after = ("a", "b") if n % 2 == 0 else ("b", "a")
        started = time.process_time()
        with raw.cursor() as cursor:
            cursor.execute("UPDATE bench_cas SET state = %s WHERE id = 1 AND state = %s", [after, before])
            cursor.execute("INSERT INTO bench_trail (kind, data) VALUES (%s, %s)", ["bench.changed", '{"before": "a"}'])
        raw.commit()
        samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)


def run() -> dict[str, Any]:
    import logging

    from django.db import connection

    prepare_database()
    for name in ("audit.events", "offers.push", "offers.notify"):
        logging.getLogger(name).setLevel(logging.ERROR)
    channel, driver = setup()
    counter = StatementCounter()
    cpu: dict[str, list[float]] = {step: [] for step in STEPS}
    statements: dict[str, list[int]] = {step: [] for step in STEPS}
    with connection.execute_wrapper(counter):
        for _ in range(20):  # warm up
            cycle(channel, driver, counter, {s: [] for s in STEPS}, {s: [] for s in STEPS})
        for _ in range(CYCLES):
            cycle(channel, driver, counter, cpu, statements)
    bare_ms = bare_change_ms()
    per_step = {step: {"cpu_ms_p50": statistics.median(cpu[step]), "statements": Counter(statements[step]).most_common(1)[0][0]} for step in STEPS}
    total_ms = sum(row["cpu_ms_p50"] for row in per_step.values())
    report: dict[str, Any] = {
        "benchmark": "one order's lifecycle (webhook received and offered, accepted, picked up, delivered): CPU of this process and statements per step",
        "cycles": CYCLES,
        "steps": per_step,
        "lifecycle_cpu_ms": total_ms,
        "lifecycle_statements": sum(row["statements"] for row in per_step.values()),
        "baseline": {"bare_compare_and_set_with_audit_cpu_ms": bare_ms},
        "ratio": {"lifecycle_over_bare_change": total_ms / bare_ms},
        "target": {"lifecycle_cpu_ms_at_most": TARGET_CPU_MS, "lifecycle_cpu_ms": total_ms, "passed": total_ms <= TARGET_CPU_MS},
    }
    write_result("lifecycle", report)
    print(f"order lifecycle, {CYCLES} cycles (CPU of this process, median per step; statements sent)")
    for step, row in per_step.items():
        print(f"  {step:<18} {row['cpu_ms_p50']:6.2f} ms  {row['statements']:3d} statements")
    print(f"  whole lifecycle    {total_ms:6.2f} ms  (target <= {TARGET_CPU_MS} ms: {'PASS' if total_ms <= TARGET_CPU_MS else 'FAIL'})")
    print(f"  bare compare-and-set + audit insert: {bare_ms:.3f} ms; lifecycle = x{total_ms / bare_ms:.0f}")
    return report
