"""The production shape, under load, with processes dying: every invariant of DESIGN.md holds.

Two uvicorn servers, two Celery workers and one beat run on a freshly migrated PostgreSQL
database and a Redis database of their own. Simulated drivers hold real sockets spread over
both servers (accepting, declining, ignoring offers, picking up and delivering over REST); a
shop posts signed webhooks to both servers and retries on the other one when a server is
gone, as Vendure's job queue would. Under that load, ops turn `v2_offers` off from a third
process and on again; then a worker and a server are killed with SIGKILL and restarted. Once
the shop stops and the drivers have finished, an auditor process checks the whole run
(tests/production/scenario.py `check`).

Slow (about three minutes): `make test FAST=1` leaves it out locally; CI runs it.
"""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from dispatch.serving import uvicorn_command
from offers import simulation
from tests.fake_vendure import FakeVendure
from tests.live.servers import free_port, wait_until_healthy
from vendure import sample_payloads

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUN_DB = "dispatch_production_shape"
RUN_REDIS_DB = 9  # apart from the suite's: the run's broker and channel layer see only the run
ORDERS_PER_S = 2.0


def _database_url(name):
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    return f"{base}/{name}"


def _fresh_database():
    with psycopg.connect(_database_url("postgres").replace("postgres://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {RUN_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {RUN_DB}")


class Shape:
    """The run's processes, each in a session of its own so SIGKILL takes the whole of it."""

    def __init__(self, env, logs):
        self.env, self.logs, self.processes, self.urls = env, logs, {}, {}

    def _start(self, name, argv):
        log = open(self.logs / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_server(self, name, port=None):
        port = port or free_port()
        self.urls[name] = f"http://127.0.0.1:{port}"
        self._start(name, [*uvicorn_command(host="127.0.0.1", port=port), "--no-access-log", "--log-level", "warning"])

    def start_worker(self, name):
        celery = [sys.executable, "-m", "celery", "-A", "dispatch"]
        self._start(name, [*celery, "worker", "-n", f"{name}@%h", "--concurrency", "2", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"])

    def start_beat(self):
        schedule = self.logs / "beat-schedule"
        self._start("beat", [sys.executable, "-m", "celery", "-A", "dispatch", "beat", "-s", str(schedule), "--loglevel", "WARNING"])

    def kill(self, name):
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(10)

    def stop_all(self):
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def step(self, *args):
        """A step of tests/production/scenario.py in a process of its own; its JSON answer."""
        done = subprocess.run([sys.executable, "-m", "tests.production.scenario", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


class Shop:
    """Posts signed ready-for-delivery webhooks to both servers; a failed delivery is retried,
    same body and event id, on the other server (Vendure's job queue retries behind a balancer)."""

    def __init__(self, shape, token, secret):
        self.shape, self.token, self.secret = shape, token, secret
        self.acknowledged, self.server_errors = [], []

    async def run(self, stop, seed=7):
        rng = random.Random(seed)
        async with httpx.AsyncClient(timeout=15) as http:
            n = 0
            while not stop.is_set():
                n += 1
                vendure_id = f"ps-{n}-{uuid.uuid4().hex[:6]}"
                order = sample_payloads.order_payload(
                    vendure_order_id=vendure_id, code=vendure_id.upper(), lat=rng.uniform(52.506, 52.534), lon=rng.uniform(13.361, 13.419), postal_code=None
                )
                body = sample_payloads.event("order.ready_for_delivery", order)
                asyncio.get_running_loop().create_task(self._deliver(http, body, vendure_id, n))
                await asyncio.sleep(rng.expovariate(ORDERS_PER_S))

    async def _deliver(self, http, body, vendure_id, n):
        servers = ["server-a", "server-b"]
        for attempt in range(40):
            raw, headers = sample_payloads.signed_request(self.token, self.secret, body)  # a new signature time per try
            url = self.shape.urls[servers[(n + attempt) % 2]]
            try:
                response = await http.post(f"{url}/webhooks/vendure/", content=raw, headers=headers)
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            if response.status_code >= 500:
                self.server_errors.append((vendure_id, response.status_code, response.text[:200]))
                await asyncio.sleep(0.5)
                continue
            assert response.status_code == 200, response.text
            self.acknowledged.append(vendure_id)
            return


def _in_background(coroutines):
    """Run the simulated shop and drivers on an event loop of their own; returns (stop, thread)."""
    stop_flag = threading.Event()
    loop = asyncio.new_event_loop()

    async def main():
        stop = asyncio.Event()
        tasks = [asyncio.create_task(make(stop)) for make in coroutines]
        while not stop_flag.is_set():
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait(tasks, timeout=30)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    return stop_flag, thread


def test_every_invariant_holds_under_load_across_processes_that_die():
    shop_api = FakeVendure(token="prod-shape-admin-token")
    lock = threading.Lock()
    answer = shop_api._answer
    shop_api._answer = lambda body, headers: _locked(lock, answer, body, headers)  # two workers call at once
    logs = Path(tempfile.mkdtemp(prefix="production-shape-"))
    redis_url = f"redis://127.0.0.1:6379/{RUN_REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    _fresh_database()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(RUN_DB),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "DJANGO_LOG_LEVEL": "WARNING",
        # the shop's Admin API stand-in listens on loopback, which outbound calls refuse by default
        "DISPATCH_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    shape = Shape(env, logs)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300)
    seeded = shape.step("seed", shop_api.url, shop_api.token)
    stop = None
    try:
        shape.start_server("server-a")
        shape.start_server("server-b")
        for name in ("worker-1", "worker-2"):
            shape.start_worker(name)
        shape.start_beat()
        for url in shape.urls.values():
            wait_until_healthy(url)

        shop = Shop(shape, seeded["shop_token"], seeded["shop_secret"])
        drivers = []
        for i, driver in enumerate(seeded["drivers"]):
            server = ("server-a", "server-b")[i % 2]
            settings = simulation.Settings(
                base_url=shape.urls[server], shop_token="", shop_secret="", accept_probability=0.75, ignore_probability=0.1,
                answer_delay_s=(0.2, 2.0), speed_m_per_s=5000.0, heartbeat_s=5.0,
            )  # fmt: skip
            sim = simulation.SimulatedDriver(driver["id"], driver["name"], driver["token"], 52.52, 13.39, (52.505, 13.36, 52.535, 13.42))
            drivers.append(lambda stop, sim=sim, settings=settings, i=i: simulation.run_driver(sim, settings, stop, seed=i))
        stop_drivers, drivers_thread = _in_background(drivers)
        stop, shop_thread = _in_background([shop.run])

        time.sleep(20)  # load builds up
        off = shape.step("flip", "off")
        time.sleep(15)  # v1 for everyone, under load
        on = shape.step("flip", "on")
        time.sleep(10)
        shape.kill("worker-1")
        shape.kill("server-a")
        port_a = int(shape.urls["server-a"].rsplit(":", 1)[1])
        time.sleep(5)  # dead for a while: sockets drop, webhooks go to the other server
        shape.start_worker("worker-1")
        shape.start_server("server-a", port=port_a)
        wait_until_healthy(shape.urls["server-a"])
        time.sleep(20)

        stop.set()
        shop_thread.join(60)
        time.sleep(40)  # the drivers finish what they hold; waiting orders escalate
        stop_drivers.set()
        drivers_thread.join(60)
        time.sleep(15)  # the last reports reach the shop (the report sweep redoes what a dead worker lost)

        fulfillments = {}
        for fulfillment in shop_api.fulfillments.values():
            fulfillments.setdefault(fulfillment["trackingCode"], []).append(fulfillment["state"])
        run = {
            "off_committed_at": off["committed_at"],
            "on_committed_at": on["committed_at"],
            "acknowledged_orders": shop.acknowledged,
            "fulfillments": fulfillments,
        }
        run_file = logs / "run.json"
        run_file.write_text(json.dumps(run))
        report = shape.step("check", str(run_file))
    finally:
        if stop is not None:
            stop.set()
        shape.stop_all()
        shop_api.close()
    print(json.dumps(report["summary"], indent=1))
    assert not shop.server_errors, shop.server_errors[:5]
    assert report["summary"]["orders"] >= 60, report["summary"]
    assert report["summary"]["by_status"].get("delivered", 0) >= 20, report["summary"]
    assert report["broken"] == {}, json.dumps(report["broken"], indent=1, default=str)[:6000]


def _locked(lock, answer, body, headers):
    with lock:
        return answer(body, headers)
