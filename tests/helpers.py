"""Small helpers shared by tests: signed webhook posts and orders received the real way."""

import json
import uuid

from usecases.intake import webhook_receive
from vendure import sample_payloads


def post_webhook(client, channel, body, *, secret=None, timestamp=None, headers=None):
    raw, signed = sample_payloads.signed_request(channel.token, secret or channel.webhook_secret, body, timestamp)
    signed.update(headers or {})
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in signed.items() if k != "Content-Type"}
    return client.post("/webhooks/vendure/", data=raw, content_type="application/json", **extra)


def ready_event(code=None, vendure_id=None, **order_kwargs):
    vendure_id = vendure_id or uuid.uuid4().hex[:10]
    order = sample_payloads.order_payload(vendure_order_id=vendure_id, code=code or f"C-{vendure_id}", **order_kwargs)
    return sample_payloads.event("order.ready_for_delivery", order)


def receive_order(channel, **order_kwargs):
    """An order received through the intake service (and assigned if a driver is free)."""
    from dispatch.models import Order

    result = webhook_receive(channel=channel, payload=ready_event(**order_kwargs))
    return Order.objects.get(pk=result.order_id)


def json_body(response):
    return json.loads(response.content)


def order_intake(code="T", postal_code="10115"):
    """A minimal order as the intake service takes it, for tests that bypass the webhook."""
    from dispatch.services import OrderIntake

    return OrderIntake(
        vendure_order_id=uuid.uuid4().hex,
        code=code,
        vendure_state="PaymentSettled",
        currency="EUR",
        total_minor=100,
        delivery_fee_minor=10,
        dropoff_postal_code=postal_code,
    )


def mark_unassigned(order, reason="test"):
    """A received order marked waiting, as dispatch does when it finds nobody: the ground move,
    in a transaction of its own."""
    from django.db import transaction
    from django.utils import timezone

    from dispatch import services

    with transaction.atomic():
        return services.order_mark_unassigned(order_id=order.pk, reason=reason, now=timezone.now()).order
