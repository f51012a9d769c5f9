"""Accepting offers (issue 11): racing accepts on one order, and accepts per second over many.

Race: an order is dispatched to 100 v2 drivers at once (a zone whose fan-out is 100) and all
100 accept at the same moment, each from a thread of its own (this process's database pool
serves them, as a server's would). Time to resolve is from the start signal until every
accept has answered; every round must have exactly one winner, every other answer "taken",
and the order assigned to the winner. Target: p50 over BENCH_RACE_ROUNDS (20) orders < 150 ms.

Throughput: 8 threads, each accepting offers of its own, one after the other; every accept is
on an order of its own and must win (checked afterwards in the database: the offer accepted,
the order assigned to that driver). Baseline, from the same threads in alternating blocks so
that load on the shared machine weighs on both alike: bare compare-and-set UPDATEs, one per
transaction. Target: accepts/s at least 10 % of the bare UPDATEs/s.
"""

import os
import statistics
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from bench.harness import prepare_database, waiting_orders_create, write_result

RACERS = int(os.environ.get("BENCH_RACERS", "100"))
RACE_ROUNDS = int(os.environ.get("BENCH_RACE_ROUNDS", "20"))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
ACCEPTS_PER_THREAD = int(os.environ.get("BENCH_ACCEPTS_PER_THREAD", "50"))
BLOCKS = int(os.environ.get("BENCH_ACCEPT_BLOCKS", "3"))
TARGET_RACE_P50_MS = 150.0
TARGET_THROUGHPUT_RATIO = 0.10


def _in_threads(count: int, work: Any) -> tuple[float, list[Any]]:
    """Run work(i) in `count` threads released at once; (seconds until all finished, results).
    An exception is a result too (its class name), so nothing fails unseen."""
    from django.db import connection

    barrier = threading.Barrier(count + 1)
    results: list[Any] = [None] * count

    def runner(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as error:
            results[i] = f"error:{type(error).__name__}"
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started, results


def time_now() -> Any:
    from django.utils import timezone

    return timezone.now()


def v2_on() -> None:
    from audit.actors import Actor
    from rollout.services import rollout_set
    from usecases.switches import switch_set

    actor = Actor.system("bench")
    switch_set(name="v2_offers", active=True, actor=actor)
    rollout_set(feature="v2_offers", percentage=100, actor=actor)


def channel_register() -> Any:
    from audit.actors import Actor
    from dispatch.services import shop_channel_register

    channel, _ = shop_channel_register(
        token="race", name="Race", webhook_secret="race-secret-0123456789", pickup_lat=52.5, pickup_lon=13.4, actor=Actor.system("bench")
    )
    return channel


def drivers_create(zone: Any, prefix: str, count: int) -> list[Any]:
    """Available v2 drivers of the zone with room for many orders, near the channel's pickup."""
    from django.contrib.auth import get_user_model

    from dispatch.models import Driver

    User = get_user_model()
    now = time_now()
    users = User.objects.bulk_create([User(username=f"{prefix}-{i}") for i in range(count)], batch_size=2000)
    drivers = Driver.objects.bulk_create(
        [
            Driver(
                user=u,
                name=f"{prefix} {i}",
                phone=f"+49{i:07d}",
                capacity=1000,
                availability="available",
                idle_since=now - timedelta(seconds=i),
                last_lat=52.5 + i * 1e-5,
                last_lon=13.4,
                last_position_at=now,
                v2_connected_at=now,
                app_version="2.5.0",
            )
            for i, u in enumerate(users)
        ],
        batch_size=2000,
    )
    Driver.zones.through.objects.bulk_create([Driver.zones.through(driver_id=d.pk, zone_id=zone.pk) for d in drivers], batch_size=5000)
    return drivers


def new_order(channel: Any, postal_code: str) -> Any:
    from audit.actors import Actor
    from dispatch import services
    from usecases import intake as intake_usecases

    order_intake = services.OrderIntake(
        vendure_order_id=uuid.uuid4().hex,
        code="RACE",
        vendure_state="PaymentSettled",
        currency="EUR",
        total_minor=1,
        delivery_fee_minor=1,
        dropoff_postal_code=postal_code,
    )
    return intake_usecases.order_receive(channel=channel, intake=order_intake, actor=Actor.system("bench"))[0]


def race_one_order(channel: Any) -> dict[str, Any]:
    from offers.errors import OfferTaken
    from offers.models import Offer
    from usecases import dispatching
    from usecases import offers as offer_usecases

    order = new_order(channel, "10115")
    dispatching.order_dispatch(order_id=order.pk)
    offers = list(Offer.objects.filter(order=order, state="pending").select_related("driver").order_by("pk"))

    def accept(i: int) -> str:
        try:
            offer_usecases.offer_accept(offer_id=offers[i].pk, driver=offers[i].driver)
            return "won"
        except OfferTaken:
            return "taken"

    elapsed, outcomes = _in_threads(len(offers), accept)
    answers = Counter(outcomes)
    winners = [offers[i].driver_id for i, outcome in enumerate(outcomes) if outcome == "won"]
    order.refresh_from_db()
    correct = (
        len(offers) == RACERS
        and answers == Counter({"won": 1, "taken": RACERS - 1})
        and order.status == "assigned"
        and order.driver_id == winners[0]
        and Offer.objects.filter(order=order, state="accepted").count() == 1
    )
    return {"resolve_ms": elapsed * 1000, "offers": len(offers), "answers": dict(answers), "correct": correct}


def accept_plans(channel: Any, zone: Any, count: int) -> list[list[tuple[int, Any]]]:
    """For each thread, `count` pending offers, each on an order of its own and to a driver of
    its own (as dispatch leaves them: the order received, one pending offer), made in bulk."""
    from offers.models import Offer

    now = time_now()
    plans = []
    for i in range(THREADS):
        drivers = drivers_create(zone, f"lane{i}-{uuid.uuid4().hex[:6]}", count)
        orders = waiting_orders_create(channel, zone, count, now, status="received", code="ACCEPT")
        offers = Offer.objects.bulk_create(
            [
                Offer(order=o, driver=d, state="pending", created_at=now, expires_at=now + timedelta(hours=1), distance_m=100)
                for o, d in zip(orders, drivers, strict=True)
            ]
        )
        plans.append([(offer.pk, driver) for offer, driver in zip(offers, drivers, strict=True)])
    return plans


def accepts_block(plans: list[list[tuple[int, Any]]]) -> tuple[float, int, int]:
    """(seconds, accepts answered, accepts that truly won: the offer accepted and the order
    assigned to its driver, checked in the database)."""
    from django.db.models import F

    from offers.models import Offer
    from usecases import offers as offer_usecases

    def work(i: int) -> int:
        for offer_id, driver in plans[i]:
            offer_usecases.offer_accept(offer_id=offer_id, driver=driver)
        return len(plans[i])

    elapsed, counts = _in_threads(THREADS, work)
    offer_ids = [offer_id for plan in plans for offer_id, _ in plan]
    won = Offer.objects.filter(pk__in=offer_ids, state="accepted", order__status="assigned", order__driver_id=F("driver_id")).count()
    return elapsed, sum(c for c in counts if isinstance(c, int)), won


def bare_block(rows: int) -> tuple[float, int]:
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_cas (id bigserial PRIMARY KEY, state text NOT NULL)")
        cursor.execute("TRUNCATE bench_cas")
        cursor.execute("INSERT INTO bench_cas (state) SELECT 'pending' FROM generate_series(1, %s::bigint)", [rows])
        cursor.execute("SELECT id FROM bench_cas ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
    plans = [ids[i::THREADS] for i in range(THREADS)]

    def work(i: int) -> int:
        won = 0
        for row_id in plans[i]:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("UPDATE bench_cas SET state = 'accepted' WHERE id = %s AND state = 'pending'", [row_id])
                won += cursor.rowcount
        return won

    elapsed, counts = _in_threads(THREADS, work)
    return elapsed, sum(c for c in counts if isinstance(c, int))


def run() -> dict[str, Any]:
    import logging

    prepare_database()
    from dispatch.models import Zone

    for name in ("audit.events", "offers.push", "offers.notify"):
        logging.getLogger(name).setLevel(logging.ERROR)
    v2_on()
    channel = channel_register()
    race_zone = Zone.objects.create(name="Race", slug="race", postal_code_prefixes=["1"], offer_fanout=RACERS, offer_timeout_s=300)
    drivers_create(race_zone, "racer", RACERS)
    race_one_order(channel)  # warm up: connections, plans
    rounds = [race_one_order(channel) for _ in range(RACE_ROUNDS)]
    resolve_ms = sorted(r["resolve_ms"] for r in rounds)
    wrong_rounds = sum(not r["correct"] for r in rounds)

    lane_zone = Zone.objects.create(name="Lanes", slug="lanes", postal_code_prefixes=["7"], offer_timeout_s=300)
    accepts_block(accept_plans(channel, lane_zone, 5))  # warm up
    bare_block(THREADS * 5)
    accept_s = bare_s = 0.0
    accepted = won = bare_done = 0
    for _ in range(BLOCKS):
        plans = accept_plans(channel, lane_zone, ACCEPTS_PER_THREAD)
        elapsed, done = bare_block(THREADS * ACCEPTS_PER_THREAD)
        bare_s += elapsed
        bare_done += done
        elapsed, answered, really_won = accepts_block(plans)
        accept_s += elapsed
        accepted += answered
        won += really_won
    expected = BLOCKS * THREADS * ACCEPTS_PER_THREAD
    accepts_per_s = won / accept_s
    bare_per_s = bare_done / bare_s
    ratio = accepts_per_s / bare_per_s
    race_p50 = statistics.median(resolve_ms)
    checks = {"race_p50": race_p50 < TARGET_RACE_P50_MS and wrong_rounds == 0, "throughput": ratio >= TARGET_THROUGHPUT_RATIO and won == expected}
    report: dict[str, Any] = {
        "benchmark": f"{RACERS} concurrent accepts on one order; accepts per second over many orders vs bare compare-and-set UPDATEs, {THREADS} threads",
        "race": {
            "rounds": RACE_ROUNDS,
            "racers": RACERS,
            "resolve_p50_ms": race_p50,
            "resolve_max_ms": resolve_ms[-1],
            "resolve_min_ms": resolve_ms[0],
            "answers": dict(sum((Counter(r["answers"]) for r in rounds), Counter())),
            "rounds_not_one_winner_and_rest_taken": wrong_rounds,
            "errors": wrong_rounds,
        },
        "throughput": {
            "threads": THREADS,
            "blocks": BLOCKS,
            "accepts": expected,
            "accepts_answered": accepted,
            "accepts_won": won,
            "accepts_per_s": accepts_per_s,
            "bare_cas_updates_per_s": bare_per_s,
            "errors": expected - won + (BLOCKS * THREADS * ACCEPTS_PER_THREAD - bare_done),
        },
        "ratio": {"accepts_over_bare": ratio},
        "target": {
            "race_resolve_p50_ms_below": TARGET_RACE_P50_MS,
            "accepts_over_bare_at_least": TARGET_THROUGHPUT_RATIO,
            "checks": checks,
            "passed": all(checks.values()),
        },
    }
    write_result("accept_race", report)
    print(f"accept race: {RACERS} drivers accepting one order at once, {RACE_ROUNDS} orders")
    print(
        f"  time to resolve: p50 {race_p50:.1f} ms, min {resolve_ms[0]:.1f}, max {resolve_ms[-1]:.1f} ms; "
        f"rounds without exactly one winner and {RACERS - 1} 'taken': {wrong_rounds} (answers {report['race']['answers']})"
    )
    print(
        f"  accepts/s ({THREADS} threads, {expected} accepts, each on its own order; won: {won}): {accepts_per_s:.0f}; "
        f"bare CAS UPDATE/s: {bare_per_s:.0f}; ratio x{ratio:.3f}"
    )
    print(
        f"  target: race p50 < {TARGET_RACE_P50_MS:.0f} ms, accepts/s >= {TARGET_THROUGHPUT_RATIO:.0%} of bare: "
        f"{'PASS' if report['target']['passed'] else 'FAIL'} ({', '.join(f'{k}: {v}' for k, v in checks.items())})"
    )
    return report
