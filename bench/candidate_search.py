"""The candidate search of one dispatch decision as a zone grows: 50, 500 and 5,000 drivers.

Each size is its own city zone of 10 km x 10 km, so a bigger fleet means denser drivers, as
when a city grows. The drivers are a realistic mix: some offline or on a break, some full,
most with a fresh position, some with a stale one or none, a few busy with another offer.
Each call is the one dispatch makes: the order's zone and pickup, the drivers not to offer
excluded by subqueries, and a limit (BENCH_CANDIDATE_LIMIT, 10). The target (issue 11): the
p50 with 5,000 drivers within 3x the p50 with 50; the sizes take turns call by call, so load
on the shared machine weighs on them alike. The same calls without a limit (every candidate,
ranked) are shown for comparison, and a sample of limited answers is checked against the head
of the unlimited ranking (a mismatch counts as an error).
"""

import math
import os
import random
import time
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from bench.harness import prepare_database, summarise, write_result

SIZES = [int(x) for x in os.environ.get("BENCH_CANDIDATE_SIZES", "50,500,5000").split(",")]
ROUNDS = int(os.environ.get("BENCH_CANDIDATE_ROUNDS", "500"))
UNLIMITED_ROUNDS = int(os.environ.get("BENCH_CANDIDATE_UNLIMITED_ROUNDS", "50"))
LIMIT = int(os.environ.get("BENCH_CANDIDATE_LIMIT", "10"))
CHECKED = 30
TARGET_RATIO = 3.0
SIDE_M = 10_000.0
METRES_PER_DEGREE = 111_195.0


def city(index: int) -> tuple[float, float, float, float]:
    """(south, west, north, east) of a 10 km square city; each size has a city of its own."""
    south, west = 47.0 + 2 * index, 8.0 + 3 * index
    north = south + SIDE_M / METRES_PER_DEGREE
    east = west + SIDE_M / (METRES_PER_DEGREE * math.cos(math.radians(north)))
    return south, west, north, east


def seed(size: int, index: int, rng: random.Random) -> tuple[Any, Any, tuple[float, float, float, float]]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from dispatch.models import Driver, Order, ShopChannel, Zone
    from offers.models import Offer

    now = timezone.now()
    south, west, north, east = box = city(index)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    zone = Zone.objects.create(name=f"City of {size}", slug=f"city-{size}", area={"type": "Polygon", "coordinates": [ring]})
    channel, _ = ShopChannel.objects.get_or_create(
        token="candidates", defaults={"name": "Candidates", "webhook_secret": "candidates-secret-0123", "pickup_lat": 52.5, "pickup_lon": 13.4}
    )
    User = get_user_model()
    users = User.objects.bulk_create(User(username=f"city-{size}-{n}") for n in range(size))
    drivers = []
    for n, user in enumerate(users):
        roll = rng.random()
        availability = "available" if roll < 0.7 else ("offline" if roll < 0.9 else "on_break")
        capacity = rng.choice([1, 1, 2])
        position = rng.random()
        fresh = position < 0.8
        has_position = position < 0.9
        drivers.append(
            Driver(
                user=user,
                name=f"Driver {size}-{n}",
                phone=f"+49{size:05d}{n:06d}",
                availability=availability,
                capacity=capacity,
                active_order_count=capacity if rng.random() < 0.2 else 0,
                idle_since=None if rng.random() < 0.05 else now - timedelta(seconds=rng.uniform(0, 7200)),
                last_lat=rng.uniform(south, north) if has_position else None,
                last_lon=rng.uniform(west, east) if has_position else None,
                last_position_at=(now - timedelta(seconds=rng.uniform(0, 60)) if fresh else now - timedelta(hours=1)) if has_position else None,
            )
        )
    drivers = Driver.objects.bulk_create(drivers, batch_size=2000)
    Driver.zones.through.objects.bulk_create((Driver.zones.through(driver_id=d.pk, zone_id=zone.pk) for d in drivers), batch_size=5000)
    # 2 % of the drivers are considering another order's offer: excluded, as dispatch does.
    busy = rng.sample(drivers, max(1, size // 50))
    other_orders = Order.objects.bulk_create(_order(channel, zone, f"busy-{size}-{n}") for n in range(len(busy)))
    Offer.objects.bulk_create(
        Offer(order=o, driver=d, state="pending", created_at=now, expires_at=now + timedelta(days=1)) for o, d in zip(other_orders, busy, strict=True)
    )
    order = Order.objects.create(**_order_fields(channel, zone, f"dispatched-{size}"))
    return zone, order, box


def _order_fields(channel: Any, zone: Any, code: str) -> dict[str, Any]:
    from django.utils import timezone

    return {
        "channel": channel,
        "vendure_order_id": uuid.uuid4().hex,
        "code": code,
        "zone": zone,
        "pickup_lat": 52.5,
        "pickup_lon": 13.4,
        "total_minor": 1,
        "delivery_fee_minor": 1,
        "currency": "EUR",
        "status": "unassigned",
        "status_changed_at": timezone.now(),
        "received_at": timezone.now(),
    }


def _order(channel: Any, zone: Any, code: str) -> Any:
    from dispatch.models import Order

    return Order(**_order_fields(channel, zone, code))


def excluded(order: Any) -> list[Any]:
    """What dispatch excludes (usecases.dispatching: drivers holding a pending offer, asked of
    each candidate; the order's missed offers and reassignments), written out here so the
    benchmark does not follow that module's changes."""
    from dispatch.selectors import DriverExclusion

    holds_pending = DriverExclusion("EXISTS (SELECT 1 FROM offers_offer po WHERE po.driver_id = d.id AND po.state = 'pending')")
    missed = DriverExclusion(
        "EXISTS (SELECT 1 FROM offers_offer mo WHERE mo.order_id = %s AND mo.driver_id = d.id AND mo.state IN ('declined', 'expired'))", (order.pk,)
    )
    lost = DriverExclusion("EXISTS (SELECT 1 FROM dispatch_reassignment ra WHERE ra.order_id = %s AND ra.driver_id = d.id)", (order.pk,))
    return [holds_pending, missed, lost]


def timed(calls: list[Any]) -> list[float]:
    latencies = []
    for call in calls:
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    return latencies


def run() -> dict[str, Any]:
    prepare_database()
    from django.db import connection
    from django.utils import timezone

    from dispatch.selectors import candidate_drivers

    rng = random.Random(11)
    cities = {size: seed(size, index, rng) for index, size in enumerate(SIZES)}
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    now = timezone.now()
    searches: dict[int, Any] = {}
    pickups: dict[int, list[tuple[float, float]]] = {}
    for size, (zone, order, (south, west, north, east)) in cities.items():
        pickups[size] = [(rng.uniform(south, north), rng.uniform(west, east)) for _ in range(ROUNDS)]

        def search(pickup: tuple[float, float], limit: int | None, zone: Any = zone, order: Any = order) -> list[Any]:
            return candidate_drivers(zone, *pickup, now=now, exclude=excluded(order), limit=limit)

        searches[size] = search
        for pickup in pickups[size][:20]:  # warm up: connection, plans, caches
            search(pickup, LIMIT)
    # The sizes take turns call by call, so a burst of load on the shared machine hits them alike.
    limited: dict[int, list[float]] = {size: [] for size in SIZES}
    unlimited: dict[int, list[float]] = {size: [] for size in SIZES}
    for n in range(ROUNDS):
        for size in SIZES:
            limited[size] += timed([partial(searches[size], pickups[size][n], LIMIT)])
            if n < UNLIMITED_ROUNDS:
                unlimited[size] += timed([partial(searches[size], pickups[size][n], None)])
    rows: dict[int, dict[str, Any]] = {}
    for size in SIZES:
        search = searches[size]
        mismatches = sum([d.pk for d in search(p, LIMIT)] != [d.pk for d in search(p, None)[:LIMIT]] for p in pickups[size][:CHECKED])
        rows[size] = {
            "limited": summarise(limited[size]),
            "unlimited": summarise(unlimited[size]),
            "candidates": len(search(pickups[size][0], None)),
            "errors": mismatches,
        }
    small, large = rows[SIZES[0]], rows[SIZES[-1]]
    ratio = large["limited"]["p50_ms"] / small["limited"]["p50_ms"]
    report: dict[str, Any] = {
        "benchmark": f"candidate search with a limit of {LIMIT}, p50 of {ROUNDS} calls, zones of {', '.join(map(str, SIZES))} drivers",
        "by_drivers": {str(k): v for k, v in rows.items()},
        "ratio": {
            f"limited_{SIZES[-1]}_over_{SIZES[0]}": ratio,
            f"unlimited_{SIZES[-1]}_over_{SIZES[0]}": large["unlimited"]["p50_ms"] / small["unlimited"]["p50_ms"],
        },
        "target": {"ratio_max": TARGET_RATIO, "ratio": ratio, "passed": ratio <= TARGET_RATIO},
        "errors": {"errors": sum(r["errors"] for r in rows.values())},
    }
    write_result("candidate_search", report)
    print(f"candidate search: limit {LIMIT}, p50 of {ROUNDS} calls (unlimited: {UNLIMITED_ROUNDS})")
    print(f"  {'drivers':>8}{'candidates':>12}{'p50 ms':>9}{'p99 ms':>9}{'unlimited p50 ms':>18}{'mismatches':>12}")
    for size, row in rows.items():
        print(
            f"  {size:>8}{row['candidates']:>12}{row['limited']['p50_ms']:>9.2f}{row['limited']['p99_ms']:>9.2f}{row['unlimited']['p50_ms']:>18.2f}{row['errors']:>12}"
        )
    verdict = "PASS" if report["target"]["passed"] else "FAIL"
    print(
        f"  {SIZES[-1]} / {SIZES[0]} drivers: x{ratio:.2f} (target <= x{TARGET_RATIO:.1f}: {verdict}); unlimited x{report['ratio'][f'unlimited_{SIZES[-1]}_over_{SIZES[0]}']:.2f}"
    )
    return report
