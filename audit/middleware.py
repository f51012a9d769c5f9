"""Keep caller-supplied correlation ids to a shape the audit trail can store and search."""

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,64}$")


def correlation_id_guard(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Drop an X-Request-ID that is too long or holds odd characters; a fresh one is made instead.

    Runs before django-guid's middleware, which takes the header as it is.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        supplied = request.META.get("HTTP_X_REQUEST_ID")
        if supplied is not None and not ACCEPTABLE_REQUEST_ID.match(supplied):
            del request.META["HTTP_X_REQUEST_ID"]
        return get_response(request)

    return middleware
