"""What polling the zone dashboard costs: the fragment htmx fetches every second, on a city's
worth of data (20 zones, 2,000 drivers, 100,000 orders, an hour of offers), against a bare
`/healthz` through the same stack in the same run. The last hour's figures are shared for
ZONE_HEALTH_LAST_HOUR_TTL_S (10 s), so one poll in ten reads them: both costs are reported,
and the cost per open dashboard is their mix once a second.
"""

import os
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from bench.harness import prepare_database, write_result

ZONES = int(os.environ.get("BENCH_ZONES", "20"))
DRIVERS = int(os.environ.get("BENCH_DRIVERS", "2000"))
ORDERS = int(os.environ.get("BENCH_ORDERS", "100000"))
REPEAT = int(os.environ.get("BENCH_POLL_REPEAT", "50"))


def seed() -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from dispatch.models import Driver, Order, ShopChannel, Zone
    from offers.models import Offer

    now = timezone.now()
    zones = Zone.objects.bulk_create(Zone(name=f"Zone {n}", slug=f"zone-{n}") for n in range(ZONES))
    channel = ShopChannel.objects.create(token="poll", name="Poll", webhook_secret="poll-secret-0123456789", pickup_lat=52.5, pickup_lon=13.4)
    users = get_user_model().objects.bulk_create(get_user_model()(username=f"poll-{n}") for n in range(DRIVERS))
    availabilities = ["available", "available", "available", "offline", "on_break"]
    drivers = Driver.objects.bulk_create(
        Driver(user=u, name=f"D{n}", phone=str(n), availability=availabilities[n % 5], capacity=2, active_order_count=n % 3 % 2) for n, u in enumerate(users)
    )
    Driver.zones.through.objects.bulk_create(Driver.zones.through(driver_id=d.pk, zone_id=zones[n % ZONES].pk) for n, d in enumerate(drivers))
    statuses = ["delivered"] * 95 + ["unassigned", "received", "assigned", "assigned", "picked_up"]
    orders = []
    for n in range(ORDERS):
        status = statuses[n % 100]
        received = now - timedelta(minutes=n % 2000)
        orders.append(
            Order(
                channel=channel,
                vendure_order_id=uuid.uuid4().hex,
                code=f"P{n}",
                zone=zones[n % ZONES],
                pickup_lat=52.5,
                pickup_lon=13.4,
                total_minor=1,
                delivery_fee_minor=1,
                currency="EUR",
                status=status,
                status_changed_at=received,
                received_at=received,
                driver=drivers[n % DRIVERS] if status in ("assigned", "picked_up", "delivered") else None,
                assigned_at=received + timedelta(seconds=40) if status in ("assigned", "picked_up", "delivered") else None,
            )
        )
    Order.objects.bulk_create(orders, batch_size=5000)
    recent = Order.objects.filter(received_at__gte=now - timedelta(hours=1)).values_list("pk", flat=True)[:5000]
    states = ["accepted", "declined", "expired", "accepted"]
    Offer.objects.bulk_create(
        Offer(
            order_id=pk,
            driver=drivers[n % DRIVERS],
            state=states[n % 4],
            created_at=now - timedelta(minutes=5),
            expires_at=now,
            answered_at=now - timedelta(minutes=4),
        )
        for n, pk in enumerate(recent)
    )


def timed(client: Any, url: str, before_each: Any = None) -> float:
    client.get(url)
    runs = []
    for _ in range(REPEAT):
        if before_each:
            before_each()
        started = time.perf_counter()
        response = client.get(url)
        runs.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(runs)


def run() -> dict[str, Any]:
    prepare_database()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client

    seed()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    user = get_user_model().objects.create_user(username="bench-ops", password="bench-ops-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="ops"))
    client = Client()
    client.force_login(user)
    from django.core.cache import cache

    bare_ms = timed(client, "/healthz")
    # As dashboards poll: the last hour's figures are shared for ZONE_HEALTH_LAST_HOUR_TTL_S.
    fragment_ms = timed(client, "/ops/zones/rows/")
    queries: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get("/ops/zones/rows/")
    # The poll that reads the last hour again (one in ten at the default 10 s).
    uncached_ms = timed(client, "/ops/zones/rows/", before_each=cache.clear)
    report: dict[str, Any] = {
        "benchmark": f"zone dashboard fragment polled every second: {ZONES} zones, {DRIVERS} drivers, {ORDERS} orders",
        "fragment_median_ms": fragment_ms,
        "fragment_reading_the_last_hour_median_ms": uncached_ms,
        "healthz_median_ms": bare_ms,
        "queries_per_poll": len(queries),
        "ratio": {"fragment_over_healthz": fragment_ms / bare_ms, "fragment_reading_the_last_hour_over_healthz": uncached_ms / bare_ms},
        "share_of_one_core_per_open_dashboard": (fragment_ms * 9 + uncached_ms) / 10 / 1000,
    }
    write_result("zone_health_poll", report)
    print(f"zone health polling: {ZONES} zones, {DRIVERS} drivers, {ORDERS} orders; median of {REPEAT}")
    print(f"  fragment {fragment_ms:.1f} ms ({len(queries)} queries), reading the last hour too {uncached_ms:.1f} ms; /healthz {bare_ms:.2f} ms")
    print(f"  x{fragment_ms / bare_ms:.0f} and x{uncached_ms / bare_ms:.0f} a bare request")
    print(f"  one open dashboard polling every second costs {report['share_of_one_core_per_open_dashboard'] * 100:.1f} % of a core")
    return report
