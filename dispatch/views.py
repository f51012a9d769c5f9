"""Plain pages: the landing page a newcomer opens, and the liveness probe."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from dispatch.models import Driver, Order


def home(request: HttpRequest) -> HttpResponse:
    counts = {status.label: Order.objects.filter(status=status).count() for status in Order.Status}
    return render(
        request,
        "home.html",
        {
            "order_counts": counts,
            "drivers_available": Driver.objects.filter(availability=Driver.Availability.AVAILABLE).count(),
            "drivers_total": Driver.objects.count(),
        },
    )


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """API clients get the API's error shape for unknown paths; people get a page."""
    if request.path.startswith(("/api/", "/webhooks/")):
        return JsonResponse({"code": "not_found", "message": f"No such endpoint: {request.path}", "detail": {}}, status=404)
    return render(request, "404.html", {"path": request.path}, status=404)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
