"""`POST /webhooks/vendure/`: the signed intake endpoint a Vendure shop plugin calls."""

import json
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from dispatch.errors import InvalidInput, error_body
from observability import metrics
from usecases import intake
from vendure import services
from vendure.signing import SignatureRefused

logger = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, detail: dict | None = None) -> JsonResponse:
    metrics.webhook_outcome(code, is_accepted=False)
    return JsonResponse(error_body(code, message, detail), status=status)


def _refuse_non_json_constant(name: str) -> None:
    # Python's json reads NaN and Infinity, which are not JSON and no column can hold.
    raise ValueError(f"{name} is not a JSON number")


@csrf_exempt
@require_POST
def vendure_webhook(request: HttpRequest) -> JsonResponse:
    limit = settings.DISPATCH_WEBHOOK_MAX_BODY_BYTES
    try:
        declared_length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _error(400, "invalid_input", "Content-Length is not a number.")
    if declared_length > limit:
        return _error(413, "body_too_large", f"The body is larger than {limit} bytes.")
    body = request.body
    if len(body) > limit:
        return _error(413, "body_too_large", f"The body is larger than {limit} bytes.")
    try:
        channel = services.webhook_authenticate(
            channel_token=request.headers.get("X-Dispatch-Channel", ""),
            signature=request.headers.get("X-Dispatch-Signature", ""),
            body=body,
        )
    except SignatureRefused as exc:
        logger.warning("webhook refused: %s", exc)
        return _error(401, "unauthenticated", str(exc))
    try:
        payload = json.loads(body, parse_constant=_refuse_non_json_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _error(400, "invalid_json", f"The body is not JSON: {exc}")
    except ValueError as exc:
        # NaN/Infinity (refused below) and integers longer than Python converts (4300 digits).
        return _error(400, "invalid_json", f"The body is not JSON we accept: {exc}")
    except RecursionError:
        return _error(400, "invalid_json", "The body is nested too deeply.")
    try:
        result = intake.webhook_receive(channel=channel, payload=payload)
    except InvalidInput as exc:
        return _error(400, exc.code, exc.message, exc.detail)
    metrics.webhook_outcome(result.outcome, is_accepted=True)
    answer = {"outcome": result.outcome, "order": result.order_id, "duplicate": result.duplicate_event}
    if result.tracking_url:
        answer["tracking_url"] = result.tracking_url
    return JsonResponse(answer)
