"""Shared plumbing for the benchmarks: a scratch database, a server process, percentiles."""

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dispatch")
# Named after the database in use, so benchmarks of two checkouts on one machine (say, two
# worktrees) never drop each other's scratch database; BENCH_DB names it outright.
BENCH_DB = os.environ.get("BENCH_DB") or BASE_URL.rsplit("/", 1)[1].split("?")[0] + "_bench"


def bench_database_url() -> str:
    return BASE_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"


def prepare_database() -> None:
    """A fresh, migrated scratch database, and Django set up against it in this process."""
    import psycopg

    if "DJANGO_SETTINGS_MODULE" in os.environ:
        from django.db import connections

        # The database is dropped under us: empty psycopg's pool, not just this thread's handle.
        for wrapper in connections.all():
            wrapper.close()
            if hasattr(wrapper, "close_pool"):
                wrapper.close_pool()
    admin = BASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["DATABASE_URL"] = bench_database_url()
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=dict(os.environ), check=True)
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(app: str = "bench.asgi:application", extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """A uvicorn process on 127.0.0.1; yields (base url, pid)."""
    port = free_port()
    from dispatch.serving import uvicorn_command  # needs Django's settings, set up by prepare_database

    process = subprocess.Popen(
        [
            *uvicorn_command(host="127.0.0.1", port=port, app=app),
            *("--log-level", "warning", "--no-access-log", "--backlog", "8192", "--timeout-graceful-shutdown", "5"),
            *os.environ.get("BENCH_UVICORN_ARGS", "").split(),
        ],
        cwd=ROOT,
        env={**os.environ, **(extra_env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def service_history_seed(channel: Any, zone: Any, count: int = 10_000) -> None:
    """What a service that has been running holds: `count` delivered orders of the channel,
    each with the webhook event that brought it, then ANALYZE as autovacuum keeps it.

    A service measured on empty tables is not the one in production: statistics taken of an
    empty table make PostgreSQL plan a prepared statement as a scan of the whole table (an
    order's compare-and-set grew to 1 ms as the benchmark filled the table), and that plan
    stays until the next ANALYZE, which autovacuum runs long before a table is that big."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from dispatch.models import Order
    from vendure.models import WebhookEvent

    since = timezone.now() - timedelta(days=30)
    for start in range(0, count, 2_000):
        waiting_orders_create(channel, zone, min(2_000, count - start), since, status="delivered", code="PAST")
    events, orders = WebhookEvent._meta.db_table, Order._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {events} (channel_id, event_id, type, vendure_order_id, order_code, created_at, received_at, outcome) "
            f"SELECT channel_id, 'past-' || id, %s, vendure_order_id, code, received_at, received_at, %s FROM {orders} WHERE code = 'PAST'",
            [WebhookEvent.Type.READY_FOR_DELIVERY, WebhookEvent.Outcome.ORDER_CREATED],
        )
        cursor.execute("ANALYZE")


def summarise(latencies_s: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_s)
    return {
        "count": len(ordered),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def write_result(name: str, report: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")


def waiting_orders_create(channel: Any, zone: Any, count: int, since: Any, *, status: str = "unassigned", code: str = "DUE") -> list[Any]:
    """`count` orders of the zone waiting for a driver since `since` (`status`: unassigned, or
    received as dispatch leaves an order it offered), made in one bulk insert."""
    import uuid

    from dispatch.models import Order

    return Order.objects.bulk_create(
        Order(
            channel=channel,
            vendure_order_id=uuid.uuid4().hex,
            code=code,
            zone=zone,
            pickup_lat=52.5,
            pickup_lon=13.4,
            dropoff_lat=52.52,  # a shop that geocodes: every move to a driver keeps its arrival estimate
            dropoff_lon=13.41,
            total_minor=1,
            delivery_fee_minor=1,
            currency="EUR",
            status=status,
            status_changed_at=since,
            received_at=since,
        )
        for _ in range(count)
    )


class StatementCounter:
    """Counts the statements this process sends, through Django's execute wrapper
    (`with connection.execute_wrapper(counter): ...`)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


async def post_all(urls: list[str], bodies: list[tuple[bytes, dict[str, str]]], *, concurrency: int) -> tuple[list[float], float, int]:
    """POST every (body, headers), `concurrency` at a time, sender i always to urls[i % len(urls)]
    (as behind a load balancer); returns (latency of each, seconds for all, answers not 200)."""
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)

    async def sender(client: httpx.AsyncClient, url: str) -> None:
        nonlocal errors
        while not queue.empty():
            raw, headers = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post(url, content=raw, headers=headers)
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    async with httpx.AsyncClient(timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(sender(client, urls[i % len(urls)]) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, errors
