"""`/healthz` (the process answers), `/readyz` (it can do its work) and `/metrics` (Prometheus)."""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from observability import selectors
from observability.metrics import metrics_exposition


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
        return JsonResponse(
            {
                "code": "forbidden",
                "message": "Metrics are for the scraper: send the METRICS_TOKEN as a bearer token, or scrape from an allowed address.",
                "detail": {},
            },
            status=403,
        )
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)
