"""The offer expiry sweep with 1,000 due offers among 100,000 and among 1,000,000 rows.

The sweep reaches due offers through a partial index on pending offers' deadlines, so its
cost follows the due offers, not the table: the ratio of the two timings shows it.
"""

import os
import time
from datetime import timedelta
from typing import Any

from bench.harness import prepare_database, waiting_orders_create, write_result

DUE = int(os.environ.get("BENCH_DUE", "1000"))
SIZES = [int(x) for x in os.environ.get("BENCH_SWEEP_SIZES", "100000,1000000").split(",")]


def seed_drivers_and_channel() -> tuple[Any, Any, list[int]]:
    from django.contrib.auth import get_user_model

    from audit.actors import Actor
    from dispatch.models import Driver, Zone
    from dispatch.services import shop_channel_register

    channel, _ = shop_channel_register(
        token="sweep", name="Sweep", webhook_secret="sweep-secret-0123456789", pickup_lat=52.5, pickup_lon=13.4, actor=Actor.system("bench")
    )
    zone = Zone.objects.create(name="Sweep", slug="sweep", postal_code_prefixes=["1"])
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"sweep-{i}") for i in range(DUE)])
    # offline drivers: after a lapse the order finds nobody else and waits, a cheap next step
    drivers = Driver.objects.bulk_create([Driver(user=u, name=f"Sweep {i}", phone=f"+5{i:07d}", availability="offline") for i, u in enumerate(users)])
    for driver in drivers:
        driver.zones.add(zone)
    return channel, zone, [d.pk for d in drivers]


def add_due_offers(channel: Any, zone: Any, driver_ids: list[int]) -> None:
    from django.utils import timezone

    from offers.models import Offer

    now = timezone.now()
    orders = waiting_orders_create(channel, zone, len(driver_ids), since=now)
    Offer.objects.bulk_create(
        [Offer(order=o, driver_id=d, state="pending", created_at=now, expires_at=now - timedelta(minutes=1)) for o, d in zip(orders, driver_ids, strict=True)]
    )


def grow_history(total_rows: int) -> None:
    """Answered offers of the past, filling the table up to `total_rows`."""
    from django.db import connection

    from offers.models import Offer

    missing = total_rows - Offer.objects.count()
    if missing <= 0:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id) FROM dispatch_order")
        order_id = cursor.fetchone()[0]
        cursor.execute("SELECT min(id) FROM dispatch_driver")
        driver_id = cursor.fetchone()[0]
        cursor.execute(
            """
            INSERT INTO offers_offer (order_id, driver_id, state, created_at, expires_at, answered_at, decline_reason, withdrawn_reason, distance_m)
            SELECT %s, %s, (ARRAY['declined','expired','withdrawn'])[1 + g %% 3],
                   now() - (g || ' seconds')::interval, now() - (g || ' seconds')::interval + interval '30 seconds',
                   now() - (g || ' seconds')::interval, '', '', NULL
            FROM generate_series(1, %s) AS g
            """,
            [order_id, driver_id, missing],
        )
        cursor.execute("ANALYZE offers_offer")


def timed_sweep() -> tuple[float, int, float]:
    from django.db import connection
    from django.db.models.functions import Now

    from offers.models import Offer
    from usecases.offers import expire_offers_due

    query = Offer.objects.filter(state="pending", expires_at__lte=Now()).order_by("expires_at").values_list("pk", "order_id")[:DUE]
    sql, params = query.query.sql_with_params()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.fetchall()
    select_s = time.perf_counter() - started
    started = time.perf_counter()
    expired = expire_offers_due(limit=DUE)
    return time.perf_counter() - started, expired, select_s


def run() -> dict[str, Any]:
    prepare_database()
    channel, zone, driver_ids = seed_drivers_and_channel()
    rows: dict[int, dict[str, float]] = {}
    for size in SIZES:
        add_due_offers(channel, zone, driver_ids)
        grow_history(size)
        sweep_s, expired, select_s = timed_sweep()
        rows[size] = {"sweep_s": sweep_s, "expired": expired, "find_due_ms": select_s * 1000, "errors": int(expired != DUE)}
    small, large = rows[SIZES[0]], rows[SIZES[-1]]
    report: dict[str, Any] = {
        "benchmark": f"offer expiry sweep over {DUE} due offers as the table grows",
        "by_table_rows": {str(k): v for k, v in rows.items()},
        "ratio": {"sweep_large_over_small": large["sweep_s"] / small["sweep_s"], "find_due_large_over_small": large["find_due_ms"] / small["find_due_ms"]},
        "errors": {"errors": sum(r["errors"] for r in rows.values())},
    }
    write_result("expiry_sweep", report)
    print(f"expiry sweep: {DUE} due offers")
    print(f"  {'table rows':>12}{'sweep s':>10}{'per offer ms':>14}{'find due ms':>13}{'expired':>9}")
    for size, row in rows.items():
        print(f"  {size:>12}{row['sweep_s']:>10.2f}{row['sweep_s'] / DUE * 1000:>14.2f}{row['find_due_ms']:>13.2f}{row['expired']:>9}")
    print(
        f"  {SIZES[-1]} rows / {SIZES[0]} rows: sweep x{report['ratio']['sweep_large_over_small']:.2f}, finding the due offers x{report['ratio']['find_due_large_over_small']:.2f}"
    )
    return report
