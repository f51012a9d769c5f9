"""The escalation sweep with 1,000 due orders among 10,000 and among 1,000,000 orders.

Due orders (waiting for a driver past their zone's limit) are found through a partial index
of waiting orders, so the sweep's cost follows the due orders, not the finished ones that
make up the table: the ratio of the two timings shows it. Each escalation is opened in full
(order lock, insert, audit event, level-1 notification sent through the log channel).
"""

import logging
import os
import time
from datetime import timedelta
from typing import Any

from bench.harness import prepare_database, waiting_orders_create, write_result

DUE = int(os.environ.get("BENCH_DUE", "1000"))
SIZES = [int(x) for x in os.environ.get("BENCH_ESCALATION_SIZES", "10000,1000000").split(",")]


def seed_channel_and_zone() -> tuple[Any, Any]:
    from audit.actors import Actor
    from dispatch.models import Zone
    from dispatch.services import shop_channel_register

    channel, _ = shop_channel_register(
        token="escalate", name="Escalate", webhook_secret="escalate-secret-0123", pickup_lat=52.5, pickup_lon=13.4, actor=Actor.system("bench")
    )
    return channel, Zone.objects.create(name="Escalate", slug="escalate", postal_code_prefixes=["1"])


def add_due_orders(channel: Any, zone: Any) -> None:
    """DUE orders waiting an hour: past the unassigned limit. Earlier due orders are delivered
    first, so each size is measured with the same number of candidates."""
    from django.utils import timezone

    from dispatch.models import Order

    Order.objects.filter(code="DUE").update(status="delivered")
    waiting_orders_create(channel, zone, DUE, since=timezone.now() - timedelta(hours=1))


def grow_history(total_rows: int, channel: Any, zone: Any) -> None:
    """Delivered orders of the past, filling the table up to `total_rows`."""
    from django.db import connection

    from dispatch.models import Order

    missing = total_rows - Order.objects.count()
    if missing <= 0:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO dispatch_order (
                channel_id, vendure_order_id, code, vendure_state, zone_id, pickup_lat, pickup_lon, dropoff_address, dropoff_postal_code,
                customer_name, customer_phone, customer_email, lines, item_summary, total_minor, delivery_fee_minor, currency, promised_at,
                status, status_changed_at, waiting_reason, received_at, assigned_at, picked_up_at, delivered_at,
                cancel_reason, failure_reason, proof_note, proof_photo_ref, reassign_count
            )
            SELECT %s, 'hist-' || md5(random()::text || g::text), 'H' || g, 'Delivered', %s, 52.5, 13.4, '{}', '10115',
                   '', '', '', '[]', '', 100, 10, 'EUR', now() - (g || ' seconds')::interval,
                   'delivered', now() - (g || ' seconds')::interval, '', now() - (g || ' seconds')::interval - interval '40 minutes',
                   now() - (g || ' seconds')::interval - interval '35 minutes', now() - (g || ' seconds')::interval - interval '20 minutes',
                   now() - (g || ' seconds')::interval, '', '', '', '', 0
            FROM generate_series(1, %s::bigint) AS g
            """,
            [channel.pk, zone.pk, missing],
        )
        cursor.execute("ANALYZE dispatch_order")


def timed_sweep() -> tuple[float, int, float]:
    from dispatch.clock import database_now
    from escalation import selectors, services

    now = database_now()
    started = time.perf_counter()
    due = selectors.escalations_due(now)
    find_s = time.perf_counter() - started
    assert len(due) == DUE, len(due)
    started = time.perf_counter()
    opened = services.open_escalations_due(now=now)
    return time.perf_counter() - started, opened, find_s


def run() -> dict[str, Any]:
    prepare_database()
    from dispatch.celery import app

    app.conf.task_always_eager = True  # each level-1 notification is sent in the run, not queued
    logging.getLogger("escalation.notifications").setLevel(logging.ERROR)
    logging.getLogger("audit.events").setLevel(logging.ERROR)
    channel, zone = seed_channel_and_zone()
    rows: dict[int, dict[str, float]] = {}
    for size in SIZES:
        add_due_orders(channel, zone)
        grow_history(size, channel, zone)
        sweep_s, opened, find_s = timed_sweep()
        from escalation.services import open_escalations_due

        started = time.perf_counter()
        reopened = open_escalations_due()  # a rerun: nothing new is due
        rerun_s = time.perf_counter() - started
        rows[size] = {
            "sweep_s": sweep_s,
            "opened": opened,
            "find_due_ms": find_s * 1000,
            "rerun_ms": rerun_s * 1000,
            "errors": int(opened != DUE or reopened != 0),
        }
    small, large = rows[SIZES[0]], rows[SIZES[-1]]
    report: dict[str, Any] = {
        "benchmark": f"escalation sweep opening {DUE} escalations as the orders table grows",
        "by_table_rows": {str(k): v for k, v in rows.items()},
        "ratio": {
            "sweep_large_over_small": large["sweep_s"] / small["sweep_s"],
            "find_due_large_over_small": large["find_due_ms"] / small["find_due_ms"],
            "rerun_large_over_small": large["rerun_ms"] / small["rerun_ms"],
        },
        "errors": {"errors": sum(r["errors"] for r in rows.values())},
    }
    write_result("escalation_sweep", report)
    print(f"escalation sweep: {DUE} due orders")
    print(f"  {'table rows':>12}{'sweep s':>10}{'per order ms':>14}{'find due ms':>13}{'rerun ms':>10}{'opened':>8}")
    for size, row in rows.items():
        print(f"  {size:>12}{row['sweep_s']:>10.2f}{row['sweep_s'] / DUE * 1000:>14.2f}{row['find_due_ms']:>13.2f}{row['rerun_ms']:>10.2f}{row['opened']:>8}")
    ratio = report["ratio"]
    print(
        f"  {SIZES[-1]} rows / {SIZES[0]} rows: sweep x{ratio['sweep_large_over_small']:.2f}, "
        f"finding the due orders x{ratio['find_due_large_over_small']:.2f}, a rerun with nothing due x{ratio['rerun_large_over_small']:.2f}"
    )
    return report
