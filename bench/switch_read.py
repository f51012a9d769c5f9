"""The kill-switch read that every dispatch decision makes, from the database (no per-process cache).

Each decision reads `v2_offers` in its own transaction with a share lock held until commit, so
a flip in another process is obeyed from the next decision on (rollout.selectors.switch_is_on).
Baseline: the same transaction reading one row by primary key. Also shown: waffle's cached
read (local memory), which is what the service no longer trusts across processes.
"""

import os
import time
from typing import Any

from bench.harness import prepare_database, summarise, write_result

ROUNDS = int(os.environ.get("BENCH_SWITCH_ROUNDS", "3000"))


def _time(call: Any) -> list[float]:
    from django.db import transaction

    latencies = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        with transaction.atomic():
            call()
        latencies.append(time.perf_counter() - started)
    return latencies


def run() -> dict[str, Any]:
    prepare_database()
    from waffle import switch_is_active

    from audit.actors import Actor
    from dispatch.models import Zone
    from rollout.selectors import switch_is_on
    from usecases.switches import switch_set

    switch_set(name="v2_offers", active=True, actor=Actor.system("bench"))
    zone = Zone.objects.create(name="Bench", slug="bench", postal_code_prefixes=["1"])
    baseline = summarise(_time(lambda: Zone.objects.filter(pk=zone.pk).values_list("pk", flat=True).first()))
    locked = summarise(_time(lambda: switch_is_on("v2_offers", hold_until_commit=True)))
    plain = summarise(_time(lambda: switch_is_on("v2_offers")))
    cached = summarise(_time(lambda: switch_is_active("v2_offers")))
    report = {
        "primary_key_read": baseline,
        "switch_read_share_locked": {**locked, "ratio_p50": locked["p50_ms"] / baseline["p50_ms"]},
        "switch_read": {**plain, "ratio_p50": plain["p50_ms"] / baseline["p50_ms"]},
        "waffle_cached_read_per_process": cached,
    }
    print(f"{'read (in its own transaction)':36} {'p50 ms':>8} {'p99 ms':>8} {'x pk read':>10}")
    for name, row in report.items():
        print(f"{name:36} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f} {row['p50_ms'] / baseline['p50_ms']:10.2f}")
    write_result("switch_read", report)
    return report
