"""`make bench`: webhook intake end to end against a bare signed insert, on PostgreSQL.

Starts its own uvicorn on 127.0.0.1 against a scratch database, sends signed webhooks from
an asyncio client with a fixed concurrency, and alternates rounds of the two endpoints so
machine noise hits both alike. Prints a table and writes bench/results/intake.json.
"""

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
BASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dispatch")
BENCH_DB = "dispatch_bench"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
REQUESTS_PER_ROUND = int(os.environ.get("BENCH_REQUESTS", "400"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))


def bench_database_url() -> str:
    return BASE_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"


def recreate_database() -> None:
    admin = BASE_URL.rsplit("/", 1)[0] + "/postgres"
    import psycopg

    with psycopg.connect(admin.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed() -> tuple[str, str]:
    import django

    django.setup()
    from audit.actors import Actor
    from dispatch.models import Driver, Zone
    from dispatch.services import driver_create, shop_channel_register

    actor = Actor.system("bench")
    Zone.objects.create(
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
    return channel.token, channel.webhook_secret


async def fire(url: str, bodies: list[tuple[bytes, dict[str, str]]]) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            raw, headers = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post(url, content=raw, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1

    async with httpx.AsyncClient(timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, errors


def signed_bodies(token: str, secret: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
    from vendure import sample_payloads

    bodies = []
    for _ in range(count):
        vid = uuid.uuid4().hex[:12]
        order = sample_payloads.order_payload(vendure_order_id=vid, code=f"B-{vid}", lat=52.5, lon=13.4, postal_code="10115")
        bodies.append(sample_payloads.signed_request(token, secret, sample_payloads.event("order.ready_for_delivery", order)))
    return bodies


def summarise(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "per_second": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
    }


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["DATABASE_URL"] = bench_database_url()
    recreate_database()
    env = {**os.environ}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    token, secret = seed()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dispatch.asgi:application", "--port", str(port), "--log-level", "warning", "--no-access-log", "--lifespan", "off"],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        asyncio.run(fire(f"{base}/webhooks/vendure/", signed_bodies(token, secret, 50)))  # warm-up
        results: dict[str, dict[str, list[float]]] = {"bare": {"lat": [], "time": []}, "intake": {"lat": [], "time": []}}
        errors = {"bare": 0, "intake": 0}
        for _ in range(ROUNDS):
            for name, path in (("bare", "/bench/bare-intake/"), ("intake", "/webhooks/vendure/")):
                latencies, elapsed, failed = asyncio.run(fire(base + path, signed_bodies(token, secret, REQUESTS_PER_ROUND)))
                results[name]["lat"].extend(latencies)
                results[name]["time"].append(elapsed)
                errors[name] += failed
    finally:
        server.terminate()
        server.wait(timeout=20)
    bare = summarise(results["bare"]["lat"], sum(results["bare"]["time"]))
    intake = summarise(results["intake"]["lat"], sum(results["intake"]["time"]))
    ratio = {
        "throughput_intake_over_bare": intake["per_second"] / bare["per_second"],
        "p50_intake_over_bare": intake["p50_ms"] / bare["p50_ms"],
        "p99_intake_over_bare": intake["p99_ms"] / bare["p99_ms"],
    }
    report = {
        "benchmark": "webhook intake end to end (signed request in, order stored, assigned, audited) vs bare signed insert",
        "database": "postgresql",
        "concurrency": CONCURRENCY,
        "rounds": ROUNDS,
        "bare": bare,
        "intake": intake,
        "errors": errors,
        "ratio": ratio,
    }
    print(f"{'endpoint':<10}{'requests':>10}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in (("bare", bare), ("intake", intake)):
        print(f"{name:<10}{row['requests']:>10}{row['per_second']:>10.1f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
    print(
        f"intake/bare: throughput x{ratio['throughput_intake_over_bare']:.2f}, "
        f"p50 x{ratio['p50_intake_over_bare']:.2f}, p99 x{ratio['p99_intake_over_bare']:.2f}; errors {errors}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "intake.json").write_text(json.dumps(report, indent=2) + "\n")
    if any(errors.values()):
        sys.exit("some requests failed: see the errors above")


if __name__ == "__main__":
    main()
