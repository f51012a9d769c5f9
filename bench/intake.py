"""Webhook intake end to end (signed request in, order stored, assigned, audited) against the
same server answering a signed request that stores one row and nothing else
(`bench/views.py`: the same signature check, one INSERT of the webhook event).

Rounds of the two endpoints alternate so that machine noise hits both alike. Target (issue
11): orders/s through the webhook at concurrency 8 at least 50 % of the bare endpoint's.
"""

import asyncio
import os
import uuid
from typing import Any

from bench.harness import post_all, prepare_database, server, service_history_seed, summarise, write_result

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
REQUESTS_PER_ROUND = int(os.environ.get("BENCH_REQUESTS", "400"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
TARGET_THROUGHPUT_RATIO = 0.5


def seed() -> tuple[str, str]:

    from audit.actors import Actor
    from dispatch.models import Driver, Zone
    from dispatch.services import driver_create, shop_channel_register

    actor = Actor.system("bench")
    zone = Zone.objects.create(
        name="Bench city",
        slug="bench",
        postal_code_prefixes=["1"],
        area={"type": "Polygon", "coordinates": [[[13.0, 52.0], [14.0, 52.0], [14.0, 53.0], [13.0, 53.0], [13.0, 52.0]]]},
    )
    channel, _ = shop_channel_register(
        token="bench-shop", name="Bench shop", webhook_secret="bench-secret-0123456789", pickup_lat=52.5, pickup_lon=13.4, actor=actor
    )
    for n in range(100):
        driver, _ = driver_create(name=f"Bench driver {n}", phone=f"+100{n:05d}", zone_slugs=["bench"], capacity=50, actor=actor)
        Driver.objects.filter(pk=driver.pk).update(availability=Driver.Availability.AVAILABLE)
    service_history_seed(channel, zone)
    return channel.token, channel.webhook_secret


def signed_bodies(token: str, secret: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
    from vendure import sample_payloads

    bodies = []
    for _ in range(count):
        vid = uuid.uuid4().hex[:12]
        order = sample_payloads.order_payload(vendure_order_id=vid, code=f"B-{vid}", lat=52.5, lon=13.4, postal_code="10115")
        bodies.append(sample_payloads.signed_request(token, secret, sample_payloads.event("order.ready_for_delivery", order)))
    return bodies


def run() -> dict[str, Any]:
    prepare_database()
    token, secret = seed()
    results: dict[str, dict[str, Any]] = {name: {"lat": [], "time": 0.0, "errors": 0} for name in ("bare", "intake")}
    with server() as (base, _):
        asyncio.run(post_all([f"{base}/webhooks/vendure/"], signed_bodies(token, secret, 50), concurrency=CONCURRENCY))  # warm-up
        for _ in range(ROUNDS):
            for name, path in (("bare", "/bench/bare-intake/"), ("intake", "/webhooks/vendure/")):
                latencies, elapsed, failed = asyncio.run(post_all([base + path], signed_bodies(token, secret, REQUESTS_PER_ROUND), concurrency=CONCURRENCY))
                results[name]["lat"] += latencies
                results[name]["time"] += elapsed
                results[name]["errors"] += failed
    from dispatch.models import Order

    # Every order went the whole way: stored, and assigned to a driver (warm-up included).
    not_assigned = 50 + ROUNDS * REQUESTS_PER_ROUND - Order.objects.filter(status="assigned").count()
    results["intake"]["errors"] += abs(not_assigned)
    rows = {name: {**summarise(r["lat"]), "per_second": len(r["lat"]) / r["time"], "errors": r["errors"]} for name, r in results.items()}
    bare, intake = rows["bare"], rows["intake"]
    throughput_ratio = intake["per_second"] / bare["per_second"]
    report: dict[str, Any] = {
        "benchmark": "webhook intake end to end vs a bare signed insert (PostgreSQL)",
        "concurrency": CONCURRENCY,
        "bare": bare,
        "intake": intake,
        "ratio": {
            "throughput_intake_over_bare": intake["per_second"] / bare["per_second"],
            "p50_intake_over_bare": intake["p50_ms"] / bare["p50_ms"],
            "p99_intake_over_bare": intake["p99_ms"] / bare["p99_ms"],
        },
        "target": {
            "throughput_intake_over_bare_at_least": TARGET_THROUGHPUT_RATIO,
            "ratio": throughput_ratio,
            "passed": throughput_ratio >= TARGET_THROUGHPUT_RATIO,
        },
    }
    write_result("intake", report)
    print(f"intake: webhook in -> order stored, assigned, audited; concurrency {CONCURRENCY}, one server process")
    print(f"  {'endpoint':<10}{'requests':>10}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, row in rows.items():
        print(f"  {name:<10}{row['count']:>10}{row['per_second']:>10.1f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['errors']:>8}")
    ratio = report["ratio"]
    print(
        f"  intake/bare: throughput x{ratio['throughput_intake_over_bare']:.2f}, p50 x{ratio['p50_intake_over_bare']:.2f}, p99 x{ratio['p99_intake_over_bare']:.2f}"
    )
    verdict = "PASS" if report["target"]["passed"] else "FAIL"
    print(f"  target: intake orders/s >= {TARGET_THROUGHPUT_RATIO:.0%} of bare: x{throughput_ratio:.2f} {verdict}")
    return report
