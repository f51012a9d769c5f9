"""Racing accepts: 100 drivers accepting one order at once, and accepts per second over many
orders, against bare compare-and-set UPDATEs from the same threads in the same run."""

import os
import threading
import time
import uuid
from typing import Any

from bench.harness import prepare_database, write_result

RACERS = int(os.environ.get("BENCH_RACERS", "100"))
RACE_ROUNDS = int(os.environ.get("BENCH_RACE_ROUNDS", "10"))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
ACCEPTS_PER_THREAD = int(os.environ.get("BENCH_ACCEPTS_PER_THREAD", "60"))


def _in_threads(count: int, work: Any) -> tuple[float, list[Any]]:
    from django.db import connection

    barrier = threading.Barrier(count + 1)
    results: list[Any] = [None] * count

    def runner(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
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


def seed() -> Any:
    from django.contrib.auth import get_user_model

    from audit.actors import Actor
    from dispatch.models import Driver, Zone
    from dispatch.services import shop_channel_register
    from rollout.services import rollout_set
    from usecases.switches import switch_set

    actor = Actor.system("bench")
    switch_set(name="v2_offers", active=True, actor=actor)
    rollout_set(feature="v2_offers", percentage=100, actor=actor)
    zone = Zone.objects.create(name="Race", slug="race", postal_code_prefixes=["1"], offer_fanout=RACERS, offer_timeout_s=300)
    channel, _ = shop_channel_register(token="race", name="Race", webhook_secret="race-secret-0123456789", pickup_lat=52.5, pickup_lon=13.4, actor=actor)
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"racer-{i}") for i in range(max(RACERS, THREADS))])
    drivers = Driver.objects.bulk_create(
        [
            Driver(user=u, name=f"Racer {i}", phone=f"+2{i:07d}", capacity=1000, availability="available", v2_connected_at=time_now(), app_version="2.5.0")
            for i, u in enumerate(users)
        ]
    )
    for driver in drivers:
        driver.zones.add(zone)
    return channel, zone, drivers


def time_now() -> Any:
    from django.utils import timezone

    return timezone.now()


def new_order(channel: Any, postal_code: str = "10115") -> Any:
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


def race_one_order(channel: Any) -> tuple[float, int, int]:
    from offers.errors import OfferTaken
    from offers.models import Offer
    from usecases import dispatching
    from usecases import offers as offer_usecases

    order = new_order(channel)
    dispatching.order_dispatch(order_id=order.pk)
    offers = list(Offer.objects.filter(order=order, state="pending").select_related("driver"))

    def accept(i: int) -> str:
        try:
            offer_usecases.offer_accept(offer_id=offers[i].pk, driver=offers[i].driver)
            return "won"
        except OfferTaken:
            return "taken"

    elapsed, outcomes = _in_threads(len(offers), accept)
    return elapsed, outcomes.count("won"), outcomes.count("taken")


def accepts_per_second(channel: Any) -> float:
    """Each thread answers offers in a zone of its own, one pending offer per driver there."""
    from django.contrib.auth import get_user_model

    from dispatch.models import Driver, Zone
    from offers.models import Offer
    from usecases import dispatching
    from usecases import offers as offer_usecases

    User = get_user_model()
    plans: list[list[tuple[int, Any]]] = []
    for i in range(THREADS):
        zone = Zone.objects.create(name=f"Lane {i}", slug=f"lane-{i}", postal_code_prefixes=[f"7{i}"], offer_timeout_s=300)
        users = User.objects.bulk_create([User(username=f"lane-{i}-{n}") for n in range(ACCEPTS_PER_THREAD)])
        drivers = Driver.objects.bulk_create(
            [
                Driver(
                    user=u,
                    name=f"Lane {i}/{n}",
                    phone=f"+3{i}{n:06d}",
                    capacity=1000,
                    availability="available",
                    v2_connected_at=time_now(),
                    app_version="2.5.0",
                )
                for n, u in enumerate(users)
            ]
        )
        for driver in drivers:
            driver.zones.add(zone)
        plan = []
        for _ in range(ACCEPTS_PER_THREAD):
            order = new_order(channel, postal_code=f"7{i}000")
            dispatching.order_dispatch(order_id=order.pk)
            offer = Offer.objects.select_related("driver").get(order=order, state="pending")
            plan.append((offer.pk, offer.driver))
        plans.append(plan)

    def work(i: int) -> int:
        for offer_id, driver in plans[i]:
            offer_usecases.offer_accept(offer_id=offer_id, driver=driver)
        return len(plans[i])

    elapsed, counts = _in_threads(THREADS, work)
    return sum(counts) / elapsed


def bare_updates_per_second() -> float:
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_cas (id bigserial PRIMARY KEY, state text NOT NULL)")
        cursor.execute("TRUNCATE bench_cas")
        cursor.execute("INSERT INTO bench_cas (state) SELECT 'pending' FROM generate_series(1, %s)", [THREADS * ACCEPTS_PER_THREAD])
        cursor.execute("SELECT id FROM bench_cas ORDER BY id")
        ids = [row[0] for row in cursor.fetchall()]
    plans = [ids[i::THREADS] for i in range(THREADS)]

    def work(i: int) -> int:
        for row_id in plans[i]:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("UPDATE bench_cas SET state = 'accepted' WHERE id = %s AND state = 'pending'", [row_id])
        return len(plans[i])

    elapsed, counts = _in_threads(THREADS, work)
    return sum(counts) / elapsed


def run() -> dict[str, Any]:
    prepare_database()
    channel, zone, drivers = seed()
    rounds = [race_one_order(channel) for _ in range(RACE_ROUNDS)]
    resolve_ms = sorted(r[0] * 1000 for r in rounds)
    winners_ok = all(won == 1 and taken == len(drivers[:RACERS]) - 1 for _, won, taken in rounds)
    bare = bare_updates_per_second()
    accepts = accepts_per_second(channel)
    report: dict[str, Any] = {
        "benchmark": f"{RACERS} concurrent accepts on one order; accepts per second over many orders vs bare compare-and-set UPDATEs",
        "race": {
            "rounds": RACE_ROUNDS,
            "resolve_p50_ms": resolve_ms[len(resolve_ms) // 2],
            "resolve_max_ms": resolve_ms[-1],
            "one_winner_every_round": winners_ok,
            "errors": 0 if winners_ok else 1,
        },
        "throughput": {"threads": THREADS, "accepts_per_s": accepts, "bare_cas_updates_per_s": bare, "ratio_accepts_over_bare": accepts / bare},
    }
    write_result("accept_race", report)
    print(f"accept race: {RACERS} drivers accepting one order at once, {RACE_ROUNDS} rounds")
    print(
        f"  time to resolve: p50 {report['race']['resolve_p50_ms']:.1f} ms, max {report['race']['resolve_max_ms']:.1f} ms; one winner and {RACERS - 1} 'taken' every round: {winners_ok}"
    )
    print(f"  accepts/s over many orders ({THREADS} threads): {accepts:.0f}; bare CAS UPDATE/s: {bare:.0f}; ratio x{accepts / bare:.3f}")
    return report
