"""`make run` on the embedded default: no DATABASE_URL, no REDIS_URL, one process."""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live.servers import free_port, wait_until_healthy
from vendure import sample_payloads

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=[False])
def embedded_service(tmp_path, request):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env["DISPATCH_VAR_DIR"] = str(tmp_path)
    manage = [sys.executable, str(ROOT / "manage.py")]
    for step in (["migrate", "--noinput"], ["load_demo"]):
        subprocess.run(manage + step, env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    serve = [*manage, "serve", "--port", str(port)] + (["--simulate"] if request.param else [])
    # its own process group, so the simulator it starts goes down with it whatever happens
    process = subprocess.Popen(serve, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base)
        yield base, tmp_path / "dispatch.sqlite3"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever it left behind
        log.close()


def test_embedded_default_takes_a_webhook_assigns_and_runs_the_sweep(embedded_service):
    base, database = embedded_service
    # a signed webhook is taken and assigned on the spot
    order = sample_payloads.order_payload(vendure_order_id="smoke-1", code="SMOKE-1", lat=52.52, lon=13.40, postal_code="10117")
    raw, headers = sample_payloads.signed_request("demo-channel", "demo-webhook-secret-change-me", sample_payloads.event("order.ready_for_delivery", order))
    response = httpx.post(f"{base}/webhooks/vendure/", content=raw, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "order_created"
    with sqlite3.connect(database) as db:
        status, driver_id = db.execute("SELECT status, driver_id FROM dispatch_order WHERE code = 'SMOKE-1'").fetchone()
        assert status == "assigned" and driver_id is not None
        # the demo's Spandau order waits: only offline drivers serve Spandau
        assert db.execute("SELECT status FROM dispatch_order WHERE code = 'DEMO-1007'").fetchone() == ("unassigned",)
        [token] = db.execute("SELECT t.key FROM authtoken_token t JOIN dispatch_driver d ON d.user_id = t.user_id WHERE d.phone = '+49 151 0000016'").fetchone()
    # when a Spandau driver comes online, the worker and beat in the same process assign it
    auth = {"Authorization": f"Token {token}"}
    assert httpx.post(f"{base}/api/v1/me/online/", headers=auth, timeout=10).json()["availability"] == "available"
    deadline = time.monotonic() + 30
    codes: list[str] = []
    while time.monotonic() < deadline and "DEMO-1007" not in codes:
        codes = [o["code"] for o in httpx.get(f"{base}/api/v1/orders/", headers=auth, timeout=10).json()]
        time.sleep(0.5)
    assert "DEMO-1007" in codes
    # the pages a newcomer opens answer
    assert "Dispatch service" in httpx.get(f"{base}/", timeout=10).text
    assert httpx.get(f"{base}/admin/login/", timeout=10).status_code == 200
    assert httpx.get(f"{base}/static/admin/css/base.css", timeout=10).status_code == 200
    assert json.loads(httpx.get(f"{base}/api/schema/?format=json", timeout=10).text)["info"]["title"]
    # every sweep of the embedded beat has run: the service is ready, and /metrics answers locally
    deadline = time.monotonic() + 60
    while (ready := httpx.get(f"{base}/readyz", timeout=10)).status_code != 200:
        assert time.monotonic() < deadline, ready.text
        time.sleep(1)
    assert ready.json()["checks"]["redis"]["detail"].startswith("embedded")
    metrics = httpx.get(f"{base}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert 'dispatch_webhooks_total{outcome="order_created",result="accepted"} 1.0' in metrics.text


@pytest.mark.parametrize("embedded_service", [True], indirect=True)
def test_make_run_shows_offers_made_answered_and_lapsing_live(embedded_service):
    """What a newcomer sees: the simulator's shop and drivers at work on the embedded default."""
    base, database = embedded_service
    deadline = time.monotonic() + 90
    states: set[str] = set()
    delivered = 0
    while time.monotonic() < deadline and not ({"accepted", "declined"} <= states and delivered):
        time.sleep(2)
        with sqlite3.connect(database) as db:
            states = {row[0] for row in db.execute("SELECT DISTINCT state FROM offers_offer")}
            delivered = db.execute("SELECT count(*) FROM dispatch_order WHERE status = 'delivered' AND code LIKE 'SIM-%'").fetchone()[0]
    assert {"accepted", "declined"} <= states, states
    assert delivered >= 1
