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


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
