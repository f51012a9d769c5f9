"""Fill the audit trail with synthetic events, to see how search behaves on a large log.

For load tests and `make bench` only: the events are marked `synthetic` (subject type) and
spread over the last `--days`, for `--orders` orders, `--drivers` drivers and the zones that
exist. PostgreSQL only (the log is built by one INSERT ... SELECT over generate_series).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

MAX_COUNT = 100_000_000
MAX_DAYS = 3_650
MAX_DRIVERS = 1_000_000
MAX_BATCH = 1_000_000

KINDS = [
    "order.received",
    "offer.made",
    "offer.declined",
    "offer.made",
    "offer.expired",
    "offer.made",
    "offer.accepted",
    "order.assigned",
    "order.picked_up",
    "order.delivered",
]


class Command(BaseCommand):
    help = "Add synthetic audit events (PostgreSQL): --count N over --days, --orders and --drivers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--orders", type=int, help="Distinct orders (default: one per 10 events)")
        parser.add_argument("--drivers", type=int, default=2000)
        parser.add_argument("--batch", type=int, default=500_000)

    def handle(self, *args: Any, count: int, days: int, orders: int | None, drivers: int, batch: int, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("generate_audit_events needs PostgreSQL (set DATABASE_URL).")
        if count < 1 or days < 1 or drivers < 1 or batch < 1 or (orders is not None and orders < 1):
            raise CommandError("--count, --days, --orders, --drivers and --batch must be positive.")
        # Past these the timestamps or ids leave what the columns hold, or the run never ends.
        if count > MAX_COUNT or days > MAX_DAYS or drivers > MAX_DRIVERS or batch > MAX_BATCH:
            raise CommandError(f"at most --count {MAX_COUNT}, --days {MAX_DAYS}, --drivers {MAX_DRIVERS} and --batch {MAX_BATCH}.")
        orders = orders or max(1, count // len(KINDS))
        with connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0) FROM audit_auditevent")
            start = cursor.fetchone()[0]
            cursor.execute("SELECT array_agg(id) FROM dispatch_zone")
            zones = cursor.fetchone()[0] or [None]
            done = 0
            while done < count:
                size = min(batch, count - done)
                # Each order's ten events are a story a few seconds apart; orders spread over the days.
                cursor.execute(
                    """
                    INSERT INTO audit_auditevent (occurred_at, kind, actor_kind, actor_id, actor_label, subject_type, subject_id,
                                                  order_id, order_code, driver_id, zone_id, before, after, data, correlation_id)
                    SELECT now() - make_interval(secs => ((g / 10) %% %(orders)s) * (%(days)s * 86400.0 / %(orders)s)) + make_interval(secs => g %% 10 * 7),
                           (%(kinds)s::text[])[1 + g %% 10],
                           CASE WHEN g %% 10 IN (6, 7, 8, 9) THEN 'driver' ELSE 'system' END, '',
                           CASE WHEN g %% 10 IN (6, 7, 8, 9) THEN 'Driver ' || (1 + (g / 10) %% %(drivers)s) ELSE 'dispatch' END,
                           'synthetic', g::text,
                           1000000000 + (g / 10) %% %(orders)s, 'SYN-' || ((g / 10) %% %(orders)s),
                           CASE WHEN g %% 10 = 0 THEN NULL ELSE 1 + (g / 10) %% %(drivers)s END,
                           (%(zones)s::bigint[])[1 + (g / 10) %% %(zone_count)s],
                           NULL, '{"state": "x"}', '{}', md5(((g / 10) * 3 + (g %% 10) / 4)::text)
                    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
                    """,
                    {
                        "orders": orders,
                        "days": days,
                        "drivers": drivers,
                        "kinds": KINDS,
                        "zones": zones,
                        "zone_count": len(zones),
                        "first": start + done + 1,
                        "last": start + done + size,
                    },
                )
                done += size
                self.stdout.write(f"{done:,} / {count:,} events")
            cursor.execute("ANALYZE audit_auditevent")
        self.stdout.write(self.style.SUCCESS(f"Added {count:,} synthetic audit events over {days} days for {orders:,} orders and {drivers:,} drivers."))
