"""`/healthz` (the process answers), `/readyz` (it can do its work), `/metrics` (Prometheus), and
the zone health pages for ops (`/ops/zones/`)."""

import hmac
import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from dispatch.access import OPS, staff_group_required
from dispatch.errors import error_body
from dispatch.models import Driver, Order, Zone
from observability import selectors
from observability.exposition import metrics_exposition


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: answers as long as the process serves requests; touches nothing else."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and Redis answer, and every scheduled sweep ran in time."""
    checks = {"database": selectors.database_check(), "redis": selectors.redis_check(), "sweeps": selectors.sweeps_check()}
    is_ready = all(check["status"] == "ok" for check in checks.values())
    return JsonResponse({"status": "ok" if is_ready else "failing", "checks": checks}, status=200 if is_ready else 503)


def _may_scrape(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    authorization = request.headers.get("Authorization", "")
    if token and authorization.startswith("Bearer ") and hmac.compare_digest(authorization.removeprefix("Bearer ").encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus scrape: a bearer token (METRICS_TOKEN) or an allowed address (METRICS_ALLOWED_IPS)."""
    if not _may_scrape(request):
        message = "Metrics are for the scraper: send the METRICS_TOKEN as a bearer token, or scrape from an allowed address."
        return JsonResponse(error_body("forbidden", message), status=403)
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


# --- Zone health: the ops dashboard ----------------------------------------------------------


@require_safe
@staff_group_required(OPS)
def zone_health_page(request: HttpRequest) -> HttpResponse:
    """Every zone at a glance; the table refreshes itself every second (htmx polling)."""
    return render(request, "staff/zone_health.html", {"health": selectors.zone_health(), "section": "zones"})


@require_safe
@staff_group_required(OPS)
def zone_health_rows(request: HttpRequest) -> HttpResponse:
    return render(request, "staff/zone_health_rows.html", {"health": selectors.zone_health()})


def _zone_now(zone: Zone) -> dict[str, Any]:
    limit = settings.ZONE_PAGE_MAX_ROWS
    waiting = list(Order.objects.filter(zone=zone, status__in=Order.WAITING_STATUSES).order_by("status_changed_at")[:limit])
    drivers = list(Driver.objects.filter(zones=zone).order_by("availability", "name")[:limit])
    return {"zone": zone, "waiting": waiting, "drivers": drivers, "now": timezone.now()}


@require_safe
@staff_group_required(OPS)
def zone_page(request: HttpRequest, slug: str) -> HttpResponse:
    """A zone's waiting orders and drivers, listed and on a map (Leaflet; tiles optional)."""
    zone = get_object_or_404(Zone, slug=slug)
    context = {
        **_zone_now(zone),
        "section": "zones",
        "tiles_url": settings.DISPATCH_MAP_TILES_URL,
        "tiles_attribution": settings.DISPATCH_MAP_TILES_ATTRIBUTION,
    }
    return render(request, "staff/zone_page.html", context)


@require_safe
@staff_group_required(OPS)
def zone_page_lists(request: HttpRequest, slug: str) -> HttpResponse:
    return render(request, "staff/zone_page_lists.html", _zone_now(get_object_or_404(Zone, slug=slug)))


@require_safe
@staff_group_required(OPS)
def zone_map_data(request: HttpRequest, slug: str) -> JsonResponse:
    """The zone's area, waiting orders (drop-off, else pickup) and drivers with a position, as
    the map draws them."""
    now = _zone_now(get_object_or_404(Zone, slug=slug))
    orders = [
        {
            "code": o.code,
            "lat": o.dropoff_lat if o.dropoff_lat is not None else o.pickup_lat,
            "lon": o.dropoff_lon if o.dropoff_lon is not None else o.pickup_lon,
            "waiting_s": (now["now"] - o.status_changed_at).total_seconds(),
        }
        for o in now["waiting"]
    ]
    drivers = [
        {"name": d.name, "lat": d.last_lat, "lon": d.last_lon, "availability": "busy" if d.is_busy else d.availability}
        for d in now["drivers"]
        if d.last_lat is not None and d.last_lon is not None
    ]
    return JsonResponse({"area": now["zone"].area, "orders": orders, "drivers": drivers})
