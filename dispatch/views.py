"""Plain pages: the landing page a newcomer opens, and JSON 404s for API clients."""

from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from dispatch.access import SUPPORT_READERS, is_in_groups
from dispatch.errors import error_body
from dispatch.models import Driver, Order
from offers.models import Offer


def home(request: HttpRequest) -> HttpResponse:
    """What the service is and where to go; the live counts only for support and ops staff
    (a visitor or a driver learns nothing about orders, offers or drivers here)."""
    if not is_in_groups(request.user, SUPPORT_READERS):
        return render(request, "home.html", {"shows_counts": False})
    by_status = dict(Order.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    by_state = dict(Offer.objects.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    by_availability = dict(Driver.objects.values_list("availability").annotate(n=Count("id")).values_list("availability", "n"))
    return render(
        request,
        "home.html",
        {
            "shows_counts": True,
            "order_counts": {status.label: by_status.get(status.value, 0) for status in Order.Status},
            "offer_counts": {state.label: by_state.get(state.value, 0) for state in Offer.State},
            "driver_counts": {a.label: by_availability.get(a.value, 0) for a in Driver.Availability},
        },
    )


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """API clients get the API's error shape for unknown paths; people get a page."""
    if request.path.startswith(("/api/", "/webhooks/")):
        return JsonResponse(error_body("not_found", f"No such endpoint: {request.path}"), status=404)
    return render(request, "404.html", {"path": request.path}, status=404)
