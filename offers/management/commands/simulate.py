import asyncio
import contextlib
import math
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework.authtoken.models import Token

from dispatch.limits import storable_text_problem
from dispatch.models import Driver, ShopChannel, Zone
from offers.simulation import Settings, SimulatedDriver, run_driver, run_shop


class Command(BaseCommand):
    help = "Run a simulated shop and simulated drivers against a running service (see offers/simulation.py)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--drivers", type=int, default=12, help="How many of the drivers to simulate")
        parser.add_argument("--orders-per-minute", type=float, default=6.0)
        parser.add_argument("--accept-probability", type=float, default=0.7)
        parser.add_argument("--duration", type=float, default=0, help="Seconds to run; 0 runs until Ctrl-C")
        parser.add_argument("--shop", default="demo-channel", help="The shop channel token to send orders as")
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["accept_probability"] <= 1:
            raise CommandError("--accept-probability is between 0 and 1")
        # Written so that NaN fails too: every comparison with NaN is false.
        if not (options["drivers"] >= 0 and 0 < options["orders_per_minute"] <= 6000):
            raise CommandError("--drivers must be 0 or more and --orders-per-minute above 0 and at most 6000")
        if not 0 <= options["duration"] < math.inf:
            raise CommandError("--duration is a number of seconds, 0 or more (0 runs until Ctrl-C)")
        if storable_text_problem(options["shop"]):
            raise CommandError(f"no shop channel {options['shop']!a}: a channel token {storable_text_problem(options['shop'])}")
        channel = ShopChannel.objects.filter(token=options["shop"]).first()
        if channel is None:
            raise CommandError(f"no shop channel {options['shop']!r}: run `manage.py load_demo` first")
        zones = [z for z in Zone.objects.filter(is_active=True, area__isnull=False) if z.area and z.drivers.exists()]
        boxes = {z.pk: _bounding_box(z.area) for z in zones if z.area}
        drivers = []
        for driver in Driver.objects.filter(zones__in=zones).distinct().order_by("pk")[: options["drivers"]]:
            zone = driver.zones.filter(pk__in=boxes).first()
            box = boxes[zone.pk]  # type: ignore[union-attr]
            token = Token.objects.get_or_create(user=driver.user)[0].key
            lat, lon = driver.last_lat or (box[0] + box[2]) / 2, driver.last_lon or (box[1] + box[3]) / 2
            drivers.append(SimulatedDriver(driver.pk, driver.name, token, lat, lon, box))
        settings = Settings(
            base_url=options["base_url"].rstrip("/"),
            shop_token=channel.token,
            shop_secret=channel.webhook_secret,
            orders_per_minute=options["orders_per_minute"],
            accept_probability=options["accept_probability"],
        )
        self.stdout.write(f"Simulating {len(drivers)} drivers and a shop sending {settings.orders_per_minute}/min to {settings.base_url}")
        asyncio.run(self._run(settings, drivers, [boxes[z.pk] for z in zones], options["duration"], options["seed"]))
        self.stdout.write(f"Simulation finished: {settings.stats}")

    async def _run(
        self, settings: Settings, drivers: list[SimulatedDriver], boxes: list[tuple[float, float, float, float]], duration: float, seed: int
    ) -> None:
        await _wait_for_service(settings.base_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        tasks = [asyncio.create_task(run_driver(d, settings, stop, seed + i)) for i, d in enumerate(drivers)]
        tasks.append(asyncio.create_task(run_shop(settings, boxes, stop, seed)))
        if duration:
            loop.call_later(duration, stop.set)
        watchdog = asyncio.create_task(_stop_when_orphaned(stop))
        await stop.wait()
        watchdog.cancel()
        await asyncio.wait(tasks, timeout=5)
        for task in tasks:
            task.cancel()


def _bounding_box(area: dict) -> tuple[float, float, float, float]:
    from dispatch.geometry import parse_area

    west, south, east, north = parse_area(area).bounds
    return south, west, north, east


async def _wait_for_service(base_url: str, timeout_s: float = 60) -> None:
    import httpx

    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            try:
                if (await http.get(f"{base_url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise CommandError(f"the service at {base_url} did not answer within {timeout_s:.0f} s")
            await asyncio.sleep(0.5)


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """Started by `serve --simulate`: when that parent dies without stopping us, stop too."""
    import os

    parent = os.getppid()
    while not stop.is_set():
        if os.getppid() != parent:
            stop.set()
        await asyncio.sleep(1)
