"""The baseline: the same signed request, checked the same way, stored as one row, nothing else."""

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from vendure.models import WebhookEvent
from vendure.services import webhook_authenticate


@csrf_exempt
def bare_intake(request: HttpRequest) -> JsonResponse:
    body = request.body
    channel = webhook_authenticate(channel_token=request.headers["X-Dispatch-Channel"], signature=request.headers["X-Dispatch-Signature"], body=body)
    event = json.loads(body)
    WebhookEvent.objects.create(
        channel=channel,
        event_id=event["id"],
        type=event["type"],
        vendure_order_id=event["order"]["id"],
        order_code=event["order"]["code"],
        created_at=event["createdAt"],
    )
    return JsonResponse({"stored": True})
