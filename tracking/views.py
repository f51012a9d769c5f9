"""`/t/<token>/`: a customer's tracking page (public, no login), and its state as JSON for
the page's polling fallback. Thin: the link and the state come from tracking.selectors."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from tracking.access import tracking_lookup_limited
from tracking.selectors import tracking_state

_UNAVAILABLE = {
    "unknown": (404, "We can't find this tracking link", "Check that the link is complete, or ask the shop for it again."),
    "expired": (410, "This delivery has ended", "Tracking links stop working a while after the delivery ends. Your order's details are with the shop."),
    "revoked": (410, "This tracking link was withdrawn", "Ask the shop for a new link if you still need one."),
    "limited": (429, "Too many tries", "Please wait a minute and try again."),
}


def _unavailable(request: HttpRequest, status: str, *, as_json: bool) -> HttpResponse:
    code, title, text = _UNAVAILABLE[status]
    response: HttpResponse
    if as_json:
        response = JsonResponse({"code": status, "message": title, "detail": {}}, status=code)
    else:
        response = render(request, "tracking/unavailable.html", {"title": title, "text": text}, status=code)
    if code == 429:
        response["Retry-After"] = "60"
    return response


def _headers(response: HttpResponse) -> HttpResponse:
    # The token is in the URL: never sent on to another site, never kept by a shared cache.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


@require_safe
@never_cache
def tracking_page(request: HttpRequest, token: str) -> HttpResponse:
    lookup = tracking_lookup_limited(request.META.get("REMOTE_ADDR", ""), token)
    if lookup.order is None:
        return _headers(_unavailable(request, lookup.status, as_json=False))
    context: dict[str, Any] = {
        "state": tracking_state(lookup.order, timezone.now()),
        "token": token,
        "poll_s": settings.DISPATCH_TRACKING_POLL_S,
        "tiles_url": settings.DISPATCH_MAP_TILES_URL,
        "tiles_attribution": settings.DISPATCH_MAP_TILES_ATTRIBUTION,
    }
    return _headers(render(request, "tracking/page.html", context))


@require_safe
@never_cache
def tracking_state_json(request: HttpRequest, token: str) -> HttpResponse:
    lookup = tracking_lookup_limited(request.META.get("REMOTE_ADDR", ""), token)
    if lookup.order is None:
        return _headers(_unavailable(request, lookup.status, as_json=True))
    return _headers(JsonResponse(tracking_state(lookup.order, timezone.now())))
