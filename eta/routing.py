"""A routing engine for arrival estimates: OSRM's HTTP route service (or Valhalla's, through
the same interface: DISPATCH_ROUTING_KIND), asked within a time budget. Slow, down or wrong, it never holds anything up: the built-in estimate stands in, the
outcome is counted in /metrics (`dispatch_eta_routing_total`), and a process that saw it fail
leaves it alone for DISPATCH_ROUTING_RETRY_S before trying again. Never called inside a
transaction (eta.services refines a kept estimate after the move committed).

Configured by DISPATCH_ROUTING_URL (one engine for every vehicle kind) and
DISPATCH_ROUTING_URLS (per vehicle kind, e.g. bicycle and foot profiles of their own).
"""

import logging
import threading
import time
from dataclasses import dataclass

import httpx
from django.conf import settings

from observability import metrics

logger = logging.getLogger(__name__)

Point = tuple[float, float]


@dataclass(frozen=True)
class Route:
    duration_s: float
    distance_m: float


_client_lock = threading.Lock()
_client: httpx.Client | None = None
# engine URL -> monotonic time before which this process does not ask it again (it failed).
_resting_until: dict[str, float] = {}


def routing_url(vehicle: str) -> str:
    return str(settings.DISPATCH_ROUTING_URLS.get(vehicle) or settings.DISPATCH_ROUTING_URL or "")


def _http() -> httpx.Client:
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(headers={"User-Agent": "dispatch-eta"}, follow_redirects=False)
        return _client


def route(vehicle: str, points: list[Point]) -> Route | None:
    """The engine's route through `points` (latitude, longitude) for this vehicle kind; None
    when no engine is configured, or it answered late, wrongly or not at all."""
    url = routing_url(vehicle)
    if not url or len(points) < 2:
        return None
    if time.monotonic() < _resting_until.get(url, 0.0):
        metrics.eta_routing("resting")
        return None
    budget_s = settings.DISPATCH_ROUTING_TIMEOUT_MS / 1000
    try:
        found = ENGINES[settings.DISPATCH_ROUTING_KIND](url, vehicle, points, budget_s)
        if not (0 <= found.duration_s < 86_400 and 0 <= found.distance_m < 2_000_000):
            raise ValueError("the engine's route is out of any sensible range")
    except httpx.TimeoutException:
        _failed(url, "timeout")
        return None
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        logger.warning("routing engine failed: %s", exc.__class__.__name__)
        _failed(url, "error")
        return None
    metrics.eta_routing("ok")
    return found


def _osrm_route(url: str, vehicle: str, points: list[Point], budget_s: float) -> Route:
    """OSRM's route service (`/route/v1/{profile}/{lon,lat;...}`): the profile is the dataset
    the server was started with, so a vehicle kind of its own is a URL of its own."""
    coordinates = ";".join(f"{lon:.6f},{lat:.6f}" for lat, lon in points)
    response = _http().get(f"{url.rstrip('/')}/route/v1/driving/{coordinates}", params={"overview": "false", "steps": "false"}, timeout=budget_s)
    body = response.json()
    if response.status_code != 200 or body.get("code") != "Ok":
        raise ValueError(f"the engine answered {response.status_code} {str(body.get('code'))[:40]}")
    best = body["routes"][0]
    return Route(duration_s=float(best["duration"]), distance_m=float(best["distance"]))


# Valhalla's costing model for each vehicle kind.
VALHALLA_COSTING = {"bicycle": "bicycle", "scooter": "motor_scooter", "car": "auto", "van": "auto", "on_foot": "pedestrian"}


def _valhalla_route(url: str, vehicle: str, points: list[Point], budget_s: float) -> Route:
    """Valhalla's `/route` service: the vehicle kind picks its costing model."""
    request = {
        "locations": [{"lat": lat, "lon": lon} for lat, lon in points],
        "costing": VALHALLA_COSTING.get(vehicle, "bicycle"),
        "units": "kilometers",
        "directions_type": "none",
    }
    response = _http().post(f"{url.rstrip('/')}/route", json=request, timeout=budget_s)
    body = response.json()
    if response.status_code != 200 or body["trip"]["status"] != 0:
        raise ValueError(f"the engine answered {response.status_code}")
    summary = body["trip"]["summary"]
    return Route(duration_s=float(summary["time"]), distance_m=float(summary["length"]) * 1000)


ENGINES = {"osrm": _osrm_route, "valhalla": _valhalla_route}


def _failed(url: str, outcome: str) -> None:
    metrics.eta_routing(outcome)
    _resting_until[url] = time.monotonic() + settings.DISPATCH_ROUTING_RETRY_S


def routing_rest_forget() -> None:
    """Ask failed engines again at once (tests; an operator's fix is seen within the retry)."""
    _resting_until.clear()
