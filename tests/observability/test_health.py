"""/healthz says the process lives; /readyz checks the database, Redis and that every scheduled
sweep finished within its interval, and says which part fails."""

import shutil
import subprocess
import time
from datetime import timedelta

import pytest
import redis
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from observability.models import SweepRun
from observability.services import sweep_run
from tests.live.servers import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_sweep_scheduled():
    """The schedule readiness judges: one sweep every 2 s (the migrations' own are replaced)."""
    PeriodicTask.objects.all().delete()
    every, _ = IntervalSchedule.objects.get_or_create(every=2, period="seconds")
    PeriodicTask.objects.create(name="Expire offers", task="offers.expire_offers_due", interval=every)


class PrivateRedis:
    """A redis-server of the test's own, so stopping it disturbs nothing else on the machine."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def private_redis(settings):
    server = PrivateRedis()
    server.start()
    settings.REDIS_URL = server.url
    yield server
    if server.process.poll() is None:
        server.stop()


def test_healthz_answers_as_long_as_the_process_lives(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_when_the_database_redis_and_the_sweeps_are(client, one_sweep_scheduled, private_redis):
    sweep_run("offers.expire_offers_due", lambda: 0)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    sweep = body["checks"]["sweeps"]["sweeps"]["offers.expire_offers_due"]
    assert (sweep["status"], sweep["every_s"], sweep["allowed_lag_s"]) == ("ok", 2.0, 2 * 3 + 30)


def test_readyz_fails_while_redis_is_stopped_and_recovers_when_it_returns(client, one_sweep_scheduled, private_redis):
    sweep_run("offers.expire_offers_due", lambda: 0)
    assert client.get("/readyz").status_code == 200
    private_redis.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["checks"]["redis"]["status"] == "failing"
    assert "Connection" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["status"] == "ok"
    private_redis.start()
    assert client.get("/readyz").status_code == 200


def test_readyz_fails_when_a_sweep_is_late_or_never_ran(client, one_sweep_scheduled, private_redis):
    # Just scheduled and not run yet: not late before its allowed lag has passed (an hourly
    # sweep is not late the minute after a deploy created it)...
    assert client.get("/readyz").json()["checks"]["sweeps"]["sweeps"]["offers.expire_offers_due"]["status"] == "ok"
    # ...and late once it has been scheduled for longer without a run.
    PeriodicTask.objects.update(date_changed=timezone.now() - timedelta(seconds=37))
    never = client.get("/readyz")
    assert never.status_code == 503
    assert never.json()["checks"]["sweeps"]["sweeps"]["offers.expire_offers_due"]["status"] == "late"
    sweep_run("offers.expire_offers_due", lambda: 0)
    SweepRun.objects.filter(name="offers.expire_offers_due").update(last_finished_at=timezone.now() - timedelta(seconds=37))
    late = client.get("/readyz").json()["checks"]["sweeps"]["sweeps"]["offers.expire_offers_due"]
    assert late["status"] == "late"
    assert late["lag_s"] >= 37


def test_a_sweep_disabled_by_ops_is_not_judged(client, one_sweep_scheduled, private_redis):
    PeriodicTask.objects.update(enabled=False)
    assert client.get("/readyz").status_code == 200


def test_a_failing_sweep_is_recorded_and_raised(one_sweep_scheduled):
    def broken():
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        sweep_run("offers.expire_offers_due", broken)
    run = SweepRun.objects.get(name="offers.expire_offers_due")
    assert (run.last_finished_at, run.runs) == (None, 1)
    assert "database went away" in run.last_error


def test_readyz_names_a_failing_sweeps_error_by_its_kind_only(client, one_sweep_scheduled, private_redis):
    def broken():
        raise RuntimeError("could not reach postgres://dispatch:PLANTED-SECRET-1f3a-db@10.0.0.5/dispatch")

    with pytest.raises(RuntimeError):
        sweep_run("offers.expire_offers_due", broken)
    response = client.get("/readyz")
    assert response.json()["checks"]["sweeps"]["sweeps"]["offers.expire_offers_due"]["last_error"] == "RuntimeError"
    assert b"PLANTED-SECRET" not in response.content and b"10.0.0.5" not in response.content
