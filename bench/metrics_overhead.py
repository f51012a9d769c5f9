"""What counting metrics costs on the offer path: the same order lifecycle with METRICS_ENABLED
on and off, in alternating blocks (the machine is shared and noisy), as a ratio.

One cycle: an order is received, dispatched (an offer to a v2 driver), accepted, picked up and
delivered, through the services, on PostgreSQL. Every metric of that path is counted when on.
"""

import os
import statistics
import time
import uuid
from typing import Any

from bench.harness import prepare_database, write_result

CYCLES = int(os.environ.get("BENCH_METRICS_CYCLES", "100"))
BLOCKS = int(os.environ.get("BENCH_METRICS_BLOCKS", "6"))


def setup() -> tuple[Any, Any]:
    from django.utils import timezone

    from audit.actors import Actor
    from dispatch.models import Zone
    from dispatch.services import driver_create, shop_channel_register
    from rollout.services import rollout_set
    from usecases.switches import switch_set

    actor = Actor.system("bench")
    channel, _ = shop_channel_register(token="metrics", name="Metrics", webhook_secret="metrics-secret-0123", pickup_lat=52.5, pickup_lon=13.4, actor=actor)
    Zone.objects.create(name="Metrics", slug="metrics", postal_code_prefixes=["1"])
    driver, _ = driver_create(name="Bench", phone="+4900", zone_slugs=["metrics"], capacity=50, actor=actor)
    from dispatch.models import Driver

    Driver.objects.filter(pk=driver.pk).update(availability="available", v2_connected_at=timezone.now(), app_version="2.3.0")
    switch_set(name="v2_offers", active=True, actor=actor)
    rollout_set(feature="v2_offers", percentage=100, actor=actor)
    return channel, Driver.objects.get(pk=driver.pk)


def cycle(channel: Any, driver: Any) -> None:
    from dispatch import services as dispatch_services
    from offers.models import Offer
    from usecases import dispatching
    from usecases import intake as intake_usecases
    from usecases import offers as offer_usecases
    from usecases import orders as order_usecases

    intake = dispatch_services.OrderIntake(
        vendure_order_id=uuid.uuid4().hex,
        code="M",
        vendure_state="PaymentSettled",
        currency="EUR",
        total_minor=100,
        delivery_fee_minor=10,
        dropoff_postal_code="10115",
    )
    order, _ = intake_usecases.order_receive(channel=channel, intake=intake, actor=dispatch_services.SYSTEM)
    dispatching.order_dispatch(order_id=order.pk)
    offer_id = Offer.objects.filter(order_id=order.pk, state="pending").values_list("pk", flat=True).get()
    offer_usecases.offer_accept(offer_id=offer_id, driver=driver)
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    order_usecases.order_deliver(order_id=order.pk, driver=driver)


def block(channel: Any, driver: Any, metrics_on: bool) -> float:
    from django.conf import settings

    settings.METRICS_ENABLED = metrics_on
    started = time.perf_counter()
    for _ in range(CYCLES):
        cycle(channel, driver)
    return (time.perf_counter() - started) / CYCLES


def run() -> dict[str, Any]:
    import logging

    prepare_database()
    logging.getLogger("audit.events").setLevel(logging.ERROR)
    logging.getLogger("offers.push").setLevel(logging.ERROR)
    channel, driver = setup()
    block(channel, driver, True)  # warm up both paths before measuring
    block(channel, driver, False)
    on: list[float] = []
    off: list[float] = []
    for n in range(BLOCKS):
        first_on = n % 2 == 0
        for metrics_on in (first_on, not first_on):
            (on if metrics_on else off).append(block(channel, driver, metrics_on))
    on_ms, off_ms = statistics.median(on) * 1000, statistics.median(off) * 1000
    report: dict[str, Any] = {
        "benchmark": "order lifecycle through an offer (receive, offer, accept, pick up, deliver) with metrics on and off",
        "cycles_per_block": CYCLES,
        "blocks": BLOCKS,
        "per_cycle_ms": {"metrics_on_median": on_ms, "metrics_off_median": off_ms, "on_blocks": [x * 1000 for x in on], "off_blocks": [x * 1000 for x in off]},
        "ratio": {"metrics_on_over_off": on_ms / off_ms},
    }
    write_result("metrics_overhead", report)
    print(f"metrics on the offer path: {BLOCKS} blocks of {CYCLES} cycles each way")
    print(f"  per cycle: metrics on {on_ms:.2f} ms, off {off_ms:.2f} ms: x{on_ms / off_ms:.3f}")
    return report
