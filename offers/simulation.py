"""A simulated shop and simulated drivers, speaking to a running service over real HTTP and WebSocket.

The shop posts signed `order.ready_for_delivery` webhooks at a steady rate. Each driver
keeps a v2 socket open, sends heartbeats, answers offers after a random delay (accepting
with a set probability, declining or letting some lapse otherwise), then drives toward the
pickup and the drop-off, reporting positions on the socket and pickup and delivery over the
v1 REST API. Used by `manage.py simulate`, `make run` and the load tests.
"""

import asyncio
import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from vendure import sample_payloads

logger = logging.getLogger("dispatch.simulation")


@dataclass
class SimulatedDriver:
    driver_id: int
    name: str
    token: str
    lat: float
    lon: float
    zone_box: tuple[float, float, float, float]


@dataclass
class Settings:
    base_url: str
    shop_token: str
    shop_secret: str
    orders_per_minute: float = 6.0
    accept_probability: float = 0.7
    ignore_probability: float = 0.1
    answer_delay_s: tuple[float, float] = (1.0, 8.0)
    speed_m_per_s: float = 60.0  # fast-forward: a few seconds per leg
    heartbeat_s: float = 20.0
    stats: dict[str, int] = field(default_factory=lambda: {"webhooks": 0, "offers": 0, "accepted": 0, "declined": 0, "ignored": 0, "delivered": 0})


def _ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://").replace("https://", "wss://").rstrip("/") + "/ws/driver/"


async def _send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps({"id": uuid.uuid4().hex[:8], **frame}))


async def _travel(ws: ClientConnection, driver: SimulatedDriver, lat: float, lon: float, settings: Settings) -> None:
    from dispatch.geometry import distance_m

    steps = max(2, int(distance_m(driver.lat, driver.lon, lat, lon) / settings.speed_m_per_s))
    start_lat, start_lon = driver.lat, driver.lon
    for step in range(1, min(steps, 8) + 1):
        fraction = step / min(steps, 8)
        driver.lat, driver.lon = start_lat + (lat - start_lat) * fraction, start_lon + (lon - start_lon) * fraction
        await _send(ws, {"type": "location", "lat": round(driver.lat, 6), "lon": round(driver.lon, 6)})
        await asyncio.sleep(1.0)


async def _deliver(ws: ClientConnection, http: httpx.AsyncClient, driver: SimulatedDriver, order: dict[str, Any], settings: Settings) -> None:
    auth = {"Authorization": f"Token {driver.token}"}
    await _travel(ws, driver, order["pickup"]["lat"], order["pickup"]["lon"], settings)
    await http.post(f"{settings.base_url}/api/v1/orders/{order['id']}/picked-up/", headers=auth)
    dropoff = order["dropoff"]
    if dropoff["lat"] is not None:
        await _travel(ws, driver, dropoff["lat"], dropoff["lon"], settings)
    response = await http.post(f"{settings.base_url}/api/v1/orders/{order['id']}/delivered/", headers=auth, json={"note": "Simulated delivery"})
    if response.status_code == 200:
        settings.stats["delivered"] += 1


async def _answer(ws: ClientConnection, offer: dict[str, Any], settings: Settings, rng: random.Random) -> None:
    await asyncio.sleep(rng.uniform(*settings.answer_delay_s))
    roll = rng.random()
    if roll < settings.accept_probability:
        await _send(ws, {"type": "accept", "offer_id": offer["id"]})
        settings.stats["accepted"] += 1
    elif roll < settings.accept_probability + settings.ignore_probability:
        settings.stats["ignored"] += 1  # silence: the offer lapses at its deadline
    else:
        await _send(ws, {"type": "decline", "offer_id": offer["id"], "reason": rng.choice(["too far", "on my way home", "vehicle too small"])})
        settings.stats["declined"] += 1


async def run_driver(driver: SimulatedDriver, settings: Settings, stop: asyncio.Event, seed: int) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Token {driver.token}", "X-App-Version": "2.4.0"}
    async with httpx.AsyncClient(timeout=10) as http:
        while not stop.is_set():
            try:
                async with connect(_ws_url(settings.base_url), additional_headers=headers, compression=None, open_timeout=10) as ws:
                    await _send(ws, {"type": "availability", "state": "available"})
                    await _send(ws, {"type": "location", "lat": driver.lat, "lon": driver.lon})
                    heartbeat = asyncio.create_task(_heartbeats(ws, settings, stop))
                    try:
                        await _listen(ws, http, driver, settings, stop, rng)
                    finally:
                        heartbeat.cancel()
            except (OSError, TimeoutError, Exception) as exc:  # reconnect as a phone would
                if stop.is_set():
                    return
                logger.info("driver %s reconnecting after %s", driver.driver_id, exc.__class__.__name__)
                await asyncio.sleep(rng.uniform(1, 3))


async def _heartbeats(ws: ClientConnection, settings: Settings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await _send(ws, {"type": "heartbeat"})
        await asyncio.sleep(settings.heartbeat_s)


async def _listen(ws: ClientConnection, http: httpx.AsyncClient, driver: SimulatedDriver, settings: Settings, stop: asyncio.Event, rng: random.Random) -> None:
    tasks: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=1.0)
        except TimeoutError:
            continue
        frame = json.loads(raw)
        if frame["type"] == "offer":
            settings.stats["offers"] += 1
            task = asyncio.create_task(_answer(ws, frame["offer"], settings, rng))
        elif _is_order_to_deliver(frame):
            task = asyncio.create_task(_deliver(ws, http, driver, frame["order"], settings))
        else:
            continue
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _is_order_to_deliver(frame: dict[str, Any]) -> bool:
    """An order this driver now holds: just accepted, or still held after a reconnect."""
    if frame["type"] == "offer_result":
        return frame.get("result") == "accepted"
    return frame["type"] == "order_update" and frame["order"]["status"] in ("assigned", "picked_up")


async def run_shop(settings: Settings, zone_boxes: list[tuple[float, float, float, float]], stop: asyncio.Event, seed: int) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=10) as http:
        while not stop.is_set():
            south, west, north, east = rng.choice(zone_boxes)
            vendure_id = f"sim-{uuid.uuid4().hex[:10]}"
            order = sample_payloads.order_payload(
                vendure_order_id=vendure_id,
                code=vendure_id.upper(),
                lat=rng.uniform(south, north),
                lon=rng.uniform(west, east),
                postal_code=None,
                fee_minor=rng.choice([399, 499, 599, 699]),
                items=((rng.choice(["Espresso beans 1 kg", "Oat milk 6-pack", "Pour-over kit", "Ceramic mug"]), rng.randint(1, 3)),),
            )
            raw, headers = sample_payloads.signed_request(settings.shop_token, settings.shop_secret, sample_payloads.event("order.ready_for_delivery", order))
            try:
                await http.post(f"{settings.base_url}/webhooks/vendure/", content=raw, headers=headers)
                settings.stats["webhooks"] += 1
            except httpx.HTTPError as exc:
                logger.warning("shop could not reach the service: %s", exc)
            await asyncio.sleep(rng.expovariate(settings.orders_per_minute / 60.0))
