"""Arrival estimates with a real OSRM (osrm-routed on the demo city's generated network, see
bin/ensure-osrm), and without it: stopped mid-run, or too slow for the time budget."""

import socket
import subprocess
import threading
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from audit.actors import Actor
from dispatch.models import Driver, Order
from eta import routing
from eta.management.commands.osrm_prepare import osrm_home, prepared_dataset
from eta.models import OrderEta
from eta.selectors import order_estimate
from observability.metrics import ETA_ROUTING
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from tests.live.servers import free_port
from usecases import orders as order_usecases

pytestmark = pytest.mark.django_db

ACROSS_MITTE = [(52.506, 13.365), (52.530, 13.410)]


def start_osrm(profile="bicycle"):
    dataset = prepared_dataset(profile)
    if not (dataset.parent / "ready").exists():
        raise pytest.UsageError("The routing tests need OSRM and the demo city prepared: `make test` runs bin/ensure-osrm.")
    port = free_port()
    process = subprocess.Popen(
        [str(osrm_home() / "osrm" / "bin" / "osrm-routed"), "--algorithm", "mld", "--ip", "127.0.0.1", "--port", str(port), str(dataset)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/route/v1/driving/13.365,52.506;13.366,52.507", timeout=1)
            return url, process
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "osrm-routed did not start"
            time.sleep(0.05)


@pytest.fixture
def osrm(settings):
    url, process = start_osrm()
    settings.DISPATCH_ROUTING_URL = url
    settings.DISPATCH_ROUTING_TIMEOUT_MS = 300
    routing.routing_rest_forget()
    yield url, process
    process.terminate()
    process.wait(10)
    routing.routing_rest_forget()


def counted(outcome):
    return ETA_ROUTING.labels(outcome)._value.get()


def test_a_route_is_the_engines_own(osrm):
    url, _ = osrm
    ok_before = counted("ok")
    found = routing.route("bicycle", ACROSS_MITTE)
    direct = httpx.get(f"{url}/route/v1/driving/13.365000,52.506000;13.410000,52.530000", params={"overview": "false"}).json()["routes"][0]
    assert found is not None and found.duration_s == direct["duration"] and found.distance_m == direct["distance"]
    assert 3000 < found.distance_m < 6000  # along the grid, longer than the 3.9 km straight line
    assert counted("ok") == ok_before + 1


def test_an_order_on_its_way_gets_the_engines_driving_time_plus_handling(osrm, settings):
    ZoneFactory()
    order = receive_order(ShopChannelFactory(), lat=52.530, lon=13.410)
    driver = DriverFactory(vehicle=Driver.Vehicle.BICYCLE)
    order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    now = timezone.now()
    Driver.objects.filter(pk=driver.pk).update(last_lat=52.506, last_lon=13.365, last_position_at=now)
    order = Order.objects.select_related("driver").get(pk=order.pk)
    estimate = order_estimate(order, order.driver, now, use_routing=True)
    found = routing.route("bicycle", ACROSS_MITTE)
    assert estimate is not None and estimate.source == "routing" and found is not None
    assert (estimate.arrive_at - now).total_seconds() == pytest.approx(found.duration_s + settings.DISPATCH_ETA_DROPOFF_HANDLING_S)


def test_a_kept_estimate_is_refined_by_the_engine_once_the_move_committed(osrm, django_capture_on_commit_callbacks):
    ZoneFactory()
    order = receive_order(ShopChannelFactory(), lat=52.530, lon=13.410)
    driver = DriverFactory(vehicle=Driver.Vehicle.BICYCLE)
    Driver.objects.filter(pk=driver.pk).update(last_lat=52.506, last_lon=13.365, last_position_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
    kept = OrderEta.objects.get(order=order)
    assert kept.source == "routing" and kept.at_assignment_earliest <= kept.at_assignment <= kept.at_assignment_latest


def test_an_engine_stopped_mid_run_falls_back_to_the_built_in_estimate_counted(osrm):
    url, process = osrm
    assert routing.route("bicycle", ACROSS_MITTE) is not None
    process.terminate()
    process.wait(10)
    errors_before, resting_before = counted("error"), counted("resting")
    started = time.monotonic()
    assert routing.route("bicycle", ACROSS_MITTE) is None
    assert time.monotonic() - started < 1
    assert counted("error") == errors_before + 1
    assert routing.route("bicycle", ACROSS_MITTE) is None and counted("resting") == resting_before + 1  # left alone for a while


def test_an_engine_slower_than_the_budget_is_not_waited_for(settings):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()  # accepts, never answers
    settings.DISPATCH_ROUTING_URL = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings.DISPATCH_ROUTING_TIMEOUT_MS = 300
    routing.routing_rest_forget()
    timeouts_before = counted("timeout")
    started = time.monotonic()
    assert routing.route("bicycle", ACROSS_MITTE) is None
    assert 0.25 < time.monotonic() - started < 1.5
    assert counted("timeout") == timeouts_before + 1
    routing.routing_rest_forget()
    listener.close()


def test_without_an_engine_the_built_in_estimate_holds(settings):
    settings.DISPATCH_ROUTING_URL = ""
    assert routing.route("bicycle", ACROSS_MITTE) is None
    ZoneFactory()
    order = receive_order(ShopChannelFactory(), lat=52.530, lon=13.410)
    driver = DriverFactory()
    order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
    order = Order.objects.select_related("driver").get(pk=order.pk)
    estimate = order_estimate(order, order.driver, timezone.now() + timedelta(seconds=1), use_routing=True)
    assert estimate is not None and estimate.source == "built_in"


class ValhallaContract:
    """A server that speaks Valhalla's /route contract (no Valhalla runs on this machine): it
    answers with the trip a real one gives for these two points, and keeps what it was asked."""

    def __init__(self):
        import json
        from http.server import BaseHTTPRequestHandler, HTTPServer

        asked = self.asked = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                asked.append((self.path, body))
                trip = {"trip": {"status": 0, "summary": {"time": 1234.5, "length": 4.321}, "legs": []}}
                payload = json.dumps(trip).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_valhalla_answers_through_the_same_interface(settings):
    contract = ValhallaContract()
    settings.DISPATCH_ROUTING_KIND = "valhalla"
    settings.DISPATCH_ROUTING_URL = contract.url
    routing.routing_rest_forget()
    found = routing.route("scooter", ACROSS_MITTE)
    contract.server.shutdown()
    assert found == routing.Route(duration_s=1234.5, distance_m=4321.0)
    [(path, asked)] = contract.asked
    assert path == "/route" and asked["costing"] == "motor_scooter"
    assert asked["locations"] == [{"lat": 52.506, "lon": 13.365}, {"lat": 52.53, "lon": 13.41}]
