"""Scaling out (issue 11): what a second server process and a second worker process add.

Three workloads, each run with one process and with two (the same database and Redis), in
alternating blocks so that load on the shared machine weighs on both alike:

- intake: the signed webhook (order stored, assigned, audited) at concurrency
  BENCH_SCALE_CONCURRENCY (8) against one uvicorn process, then spread round-robin over two;
  orders/s and p50;
- accepts: a worker process of 8 threads accepting offers of their own (each on an order of
  its own, each checked afterwards to have won), then two such processes at once; accepts/s;
- lifecycle: a worker process running whole lifecycles one after the other (webhook received
  and offered to a v2 driver, accepted, picked up, delivered, each through its use case), then
  two such processes, each with its own zone and driver; lifecycles/s.

The workers are plain processes calling the use cases (no Celery). The figure is the ratio of
two processes to one; there is no target: on two cores shared with PostgreSQL, Redis, the load
generator and other people's work, the gain may be small, and it is reported as measured.
"""

import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import ROOT, post_all, prepare_database, server, summarise, write_result

BLOCKS = int(os.environ.get("BENCH_SCALE_BLOCKS", "3"))
CONCURRENCY = int(os.environ.get("BENCH_SCALE_CONCURRENCY", "8"))
REQUESTS_PER_BLOCK = int(os.environ.get("BENCH_SCALE_REQUESTS", "300"))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
ACCEPTS_PER_THREAD = int(os.environ.get("BENCH_SCALE_ACCEPTS_PER_THREAD", "40"))
CYCLES_PER_WORKER = int(os.environ.get("BENCH_SCALE_CYCLES", "60"))


# --- intake through one or two servers ------------------------------------------------------


def intake_scaling() -> dict[str, Any]:
    from bench import intake
    from dispatch.models import Order

    token, secret = intake.seed()
    results: dict[int, dict[str, Any]] = {n: {"lat": [], "time": 0.0, "errors": 0} for n in (1, 2)}
    sent = 0
    with server() as (first, _), server() as (second, _):
        for base in (first, second):  # warm up both
            asyncio.run(post_all([f"{base}/webhooks/vendure/"], intake.signed_bodies(token, secret, 30), concurrency=CONCURRENCY))
            sent += 30
        for _ in range(BLOCKS):
            for processes, urls in ((1, [first]), (2, [first, second])):
                latencies, elapsed, failed = asyncio.run(
                    post_all([f"{u}/webhooks/vendure/" for u in urls], intake.signed_bodies(token, secret, REQUESTS_PER_BLOCK), concurrency=CONCURRENCY)
                )
                sent += REQUESTS_PER_BLOCK
                results[processes]["lat"] += latencies
                results[processes]["time"] += elapsed
                results[processes]["errors"] += failed
    not_assigned = sent - Order.objects.filter(status="assigned").count()
    rows = {n: {**summarise(r["lat"]), "per_second": len(r["lat"]) / r["time"], "errors": r["errors"]} for n, r in results.items()}
    rows[2]["errors"] += abs(not_assigned)
    return {
        "one_server": rows[1],
        "two_servers": rows[2],
        "ratio_two_over_one": rows[2]["per_second"] / rows[1]["per_second"],
        "p50_two_over_one": rows[2]["p50_ms"] / rows[1]["p50_ms"],
    }


# --- worker processes -----------------------------------------------------------------------


def workers_run(role: str, plans: list[Any]) -> tuple[float, list[dict[str, Any]]]:
    """Start one worker process per plan, let them all set up, start them at once; returns
    (seconds from the first start to the last finish, each worker's answer)."""
    files, processes = [], []
    try:
        for plan in plans:
            handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115 (closed below, removed in finally)
            json.dump(plan, handle)
            handle.close()
            files.append(handle.name)
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.scale_out", role, handle.name],
                    cwd=ROOT,
                    env=dict(os.environ),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {role} worker did not start")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        answers = []
        for process in processes:
            out, _ = process.communicate(timeout=600)
            answers.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for name in files:
            Path(name).unlink(missing_ok=True)
    span = max(a["finished"] for a in answers) - min(a["started"] for a in answers)
    return span, answers


def accepts_scaling() -> dict[str, Any]:
    from django.db.models import F

    from bench import accept_race
    from dispatch.models import Zone
    from offers.models import Offer

    channel = accept_race.channel_register()
    zone = Zone.objects.create(name="Scale lanes", slug="scale-lanes", postal_code_prefixes=["8"], offer_timeout_s=600)

    def plans(workers: int) -> list[list[list[tuple[int, int]]]]:
        return [
            [[(offer_id, driver.pk) for offer_id, driver in lane] for lane in accept_race.accept_plans(channel, zone, ACCEPTS_PER_THREAD)]
            for _ in range(workers)
        ]

    workers_run("accept", plans(1))  # warm up
    totals = {n: {"seconds": 0.0, "accepts": 0, "won": 0, "errors": 0} for n in (1, 2)}
    for _ in range(BLOCKS):
        for workers in (1, 2):
            block = plans(workers)
            seconds, answers = workers_run("accept", block)
            offer_ids = [offer_id for plan in block for lane in plan for offer_id, _ in lane]
            won = Offer.objects.filter(pk__in=offer_ids, state="accepted", order__status="assigned", order__driver_id=F("driver_id")).count()
            totals[workers]["seconds"] += seconds
            totals[workers]["accepts"] += len(offer_ids)
            totals[workers]["won"] += won
            totals[workers]["errors"] += len(offer_ids) - won + sum(a["errors"] for a in answers)
    rows = {n: {**t, "per_second": t["won"] / t["seconds"]} for n, t in totals.items()}
    return {"one_worker": rows[1], "two_workers": rows[2], "threads_per_worker": THREADS, "ratio_two_over_one": rows[2]["per_second"] / rows[1]["per_second"]}


def lifecycle_lanes(count: int) -> list[dict[str, Any]]:
    """A zone, a channel and a v2 driver of its own for each lifecycle worker."""
    from django.utils import timezone

    from audit.actors import Actor
    from dispatch.models import Driver, Zone
    from dispatch.services import driver_create, shop_channel_register

    actor = Actor.system("bench")
    lanes = []
    for _ in range(count):
        tag = uuid.uuid4().hex[:8]
        channel, _ = shop_channel_register(
            token=f"life-{tag}", name=f"Life {tag}", webhook_secret=f"life-secret-{tag}-0123", pickup_lat=52.5, pickup_lon=13.4, actor=actor
        )
        lane_number = next(lane_numbers)
        prefix = f"9{lane_number:03d}"
        Zone.objects.create(name=f"Life {tag}", slug=f"life-{tag}", postal_code_prefixes=[prefix])
        driver, _ = driver_create(name=f"Life {tag}", phone=f"+4990{lane_number:05d}", zone_slugs=[f"life-{tag}"], capacity=50, actor=actor)
        Driver.objects.filter(pk=driver.pk).update(availability="available", v2_connected_at=timezone.now(), app_version="2.3.0")
        lanes.append({"channel_id": channel.pk, "driver_id": driver.pk, "postal_code": f"{prefix}5", "cycles": CYCLES_PER_WORKER})
    return lanes


lane_numbers = itertools.count()  # each lane's zone has a postal prefix of its own


def lifecycle_scaling() -> dict[str, Any]:
    from dispatch.models import Order

    workers_run("lifecycle", [{**lane, "cycles": 10} for lane in lifecycle_lanes(1)])  # warm up
    totals = {n: {"seconds": 0.0, "cycles": 0, "errors": 0} for n in (1, 2)}
    for _ in range(BLOCKS):
        for workers in (1, 2):
            lanes = lifecycle_lanes(workers)
            seconds, answers = workers_run("lifecycle", lanes)
            delivered = Order.objects.filter(driver_id__in=[lane["driver_id"] for lane in lanes], status="delivered").count()
            totals[workers]["seconds"] += seconds
            totals[workers]["cycles"] += delivered
            totals[workers]["errors"] += workers * CYCLES_PER_WORKER - delivered + sum(a["errors"] for a in answers)
    rows = {n: {**t, "per_second": t["cycles"] / t["seconds"]} for n, t in totals.items()}
    return {"one_worker": rows[1], "two_workers": rows[2], "ratio_two_over_one": rows[2]["per_second"] / rows[1]["per_second"]}


def run() -> dict[str, Any]:
    import logging

    prepare_database()
    for name in ("audit.events", "offers.push", "offers.notify"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from bench import accept_race

    intake = intake_scaling()
    accept_race.v2_on()  # accepts and lifecycles go through v2 offers
    accepts = accepts_scaling()
    lifecycle = lifecycle_scaling()
    report: dict[str, Any] = {
        "benchmark": "one process against two (the same database and Redis): webhook intake through uvicorn servers; accepts and whole lifecycles from worker processes",
        "blocks": BLOCKS,
        "intake": {**intake, "concurrency": CONCURRENCY, "errors": intake["one_server"]["errors"] + intake["two_servers"]["errors"]},
        "accepts": {**accepts, "errors": accepts["one_worker"]["errors"] + accepts["two_workers"]["errors"]},
        "lifecycle": {**lifecycle, "errors": lifecycle["one_worker"]["errors"] + lifecycle["two_workers"]["errors"]},
        "ratio": {
            "intake_two_servers_over_one": intake["ratio_two_over_one"],
            "accepts_two_workers_over_one": accepts["ratio_two_over_one"],
            "lifecycle_two_workers_over_one": lifecycle["ratio_two_over_one"],
        },
        "target": {"note": "none: the gain is reported as measured"},
    }
    write_result("scale_out", report)
    print(f"scaling out: one process against two, {BLOCKS} alternating blocks (no target; {os.cpu_count()} cores shared with the database)")
    one, two = intake["one_server"], intake["two_servers"]
    print(
        f"  intake, concurrency {CONCURRENCY}: one server {one['per_second']:.1f}/s (p50 {one['p50_ms']:.1f} ms), two servers {two['per_second']:.1f}/s "
        f"(p50 {two['p50_ms']:.1f} ms): x{intake['ratio_two_over_one']:.2f}; errors {report['intake']['errors']}"
    )
    one, two = accepts["one_worker"], accepts["two_workers"]
    print(
        f"  accepts, {THREADS} threads a worker: one worker {one['per_second']:.1f}/s, two workers {two['per_second']:.1f}/s: x{accepts['ratio_two_over_one']:.2f}; "
        f"errors {report['accepts']['errors']}"
    )
    one, two = lifecycle["one_worker"], lifecycle["two_workers"]
    print(
        f"  lifecycles: one worker {one['per_second']:.1f}/s, two workers {two['per_second']:.1f}/s: x{lifecycle['ratio_two_over_one']:.2f}; "
        f"errors {report['lifecycle']['errors']}"
    )
    return report


# --- inside a worker process ----------------------------------------------------------------


def _accept_worker(plan: list[list[list[int]]]) -> dict[str, Any]:
    from bench.accept_race import _in_threads
    from dispatch.models import Driver
    from usecases import offers

    drivers = Driver.objects.in_bulk([driver_id for lane in plan for _, driver_id in lane])
    lanes = [[(offer_id, drivers[driver_id]) for offer_id, driver_id in lane] for lane in plan]
    _ready()

    def work(i: int) -> int:
        for offer_id, driver in lanes[i]:
            offers.offer_accept(offer_id=offer_id, driver=driver)
        return len(lanes[i])

    started = time.monotonic()
    _, counts = _in_threads(len(lanes), work)
    finished = time.monotonic()
    return {"started": started, "finished": finished, "errors": sum(not isinstance(c, int) for c in counts)}


def _lifecycle_worker(lane: dict[str, Any]) -> dict[str, Any]:
    from dispatch.models import Driver, ShopChannel
    from offers.models import Offer
    from usecases import intake, offers, orders
    from vendure import sample_payloads

    channel = ShopChannel.objects.get(pk=lane["channel_id"])
    driver = Driver.objects.get(pk=lane["driver_id"])
    payloads = [
        sample_payloads.event(
            "order.ready_for_delivery",
            sample_payloads.order_payload(vendure_order_id=uuid.uuid4().hex, code="SCALE", postal_code=lane["postal_code"], lat=None, lon=None),
        )
        for _ in range(lane["cycles"])
    ]
    _ready()
    errors = 0
    started = time.monotonic()
    for payload in payloads:
        try:
            order_id = intake.webhook_receive(channel=channel, payload=payload).order_id
            assert order_id is not None
            offer_id = Offer.objects.filter(order_id=order_id, state="pending").values_list("pk", flat=True).get()
            offers.offer_accept(offer_id=offer_id, driver=driver)
            orders.order_pick_up(order_id=order_id, driver=driver)
            orders.order_deliver(order_id=order_id, driver=driver)
        except Exception:  # counted: the parent checks every order was delivered
            errors += 1
    finished = time.monotonic()
    return {"started": started, "finished": finished, "errors": errors}


def _ready() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")


def _worker_main(role: str, plan_file: str) -> None:
    import logging

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    for name in ("audit.events", "offers.push", "offers.notify"):
        logging.getLogger(name).setLevel(logging.ERROR)
    plan = json.loads(Path(plan_file).read_text())
    answer = _accept_worker(plan) if role == "accept" else _lifecycle_worker(plan)
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _worker_main(sys.argv[1], sys.argv[2])
