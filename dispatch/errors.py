"""The one application error type and its mapping to HTTP answers.

Services raise subclasses of `DispatchError`; the DRF exception handler (and later the
driver socket consumer) turns them into `{"code", "message", "detail"}` answers, so a
user's mistake is a clear 4xx and never a 500.
"""

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class DispatchError(Exception):
    """A refusal the caller can act on; `code` is stable and machine-readable."""

    code = "dispatch_error"
    http_status: int = status.HTTP_409_CONFLICT

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(DispatchError):
    code = "not_found"
    http_status = status.HTTP_404_NOT_FOUND


class InvalidInput(DispatchError):
    code = "invalid_input"
    http_status = status.HTTP_400_BAD_REQUEST


class IllegalTransition(DispatchError):
    """The subject is not in a state from which the requested one can be reached."""

    code = "illegal_transition"

    def __init__(self, subject: str, current: str, requested: str) -> None:
        super().__init__(
            f"{subject} is {current}; it cannot become {requested}",
            current=current,
            requested=requested,
        )


class FeatureOff(DispatchError):
    """The request needs a v2 feature that is switched off, or not rolled out, for this driver."""

    code = "feature_off"


class OverCapacity(DispatchError):
    code = "over_capacity"


class DriverBusy(DispatchError):
    """Another transaction holds the driver right now (a dispatch decision passes them over)."""

    code = "driver_busy"


class DriverUnavailable(DispatchError):
    code = "driver_unavailable"


class DriverOffline(DispatchError):
    """The driver is offline: what they send while offline (a position) is not taken."""

    code = "driver_offline"


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The one shape of every refusal, over REST, the webhook, /metrics and the driver socket."""
    return {"code": code, "message": message, "detail": detail if detail is not None else {}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render domain errors and DRF's own errors in one shape."""
    if isinstance(exc, DispatchError):
        return Response(
            error_body(exc.code, exc.message, exc.detail),
            status=exc.http_status,
        )
    response = exception_handler(exc, context)
    if response is not None:
        code = getattr(exc, "default_code", "error")
        data = response.data
        if isinstance(data, dict) and set(data) == {"detail"}:
            response.data = error_body(code, str(data["detail"]))
        else:
            response.data = error_body(code, "The request is not valid.", data)
    return response
