"""A shop's webhook: the order stored and dispatched, or cancelled, in one transaction."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import audit_batched
from dispatch import services as lifecycle
from dispatch.errors import IllegalTransition
from dispatch.models import Order, ShopChannel
from proof import services as proof_services
from tracking import links as tracking_links
from tracking import selectors as tracking_selectors
from tracking import services as tracking
from usecases.dispatching import order_dispatch_locked
from usecases.orders import order_cancel_locked
from vendure import services as vendure
from vendure.models import WebhookEvent

Outcome = WebhookEvent.Outcome


@dataclass(frozen=True)
class WebhookResult:
    outcome: str
    order_id: int | None = None
    duplicate_event: bool = False
    tracking_url: str | None = None  # for an order received now or before: the customer's link


def webhook_receive(*, channel: ShopChannel, payload: Any, now: datetime | None = None) -> WebhookResult:
    """Apply one authenticated delivery. A retried event or a known order changes nothing.

    One transaction for the event, the order and its dispatch: one commit per webhook, and a
    failure anywhere leaves nothing behind for Vendure's retry to trip over.
    """
    now = now or timezone.now()
    event = vendure.webhook_event_parse(payload)
    order_data = event["order"]
    actor = vendure.shop_actor(channel)
    with transaction.atomic(durable=True), audit_batched():  # the order received and its dispatch: one INSERT
        is_ready = event["type"] == WebhookEvent.Type.READY_FOR_DELIVERY
        record = vendure.webhook_event_record(channel=channel, event=event, expected_outcome=Outcome.ORDER_CREATED if is_ready else "")
        if record is None:
            return WebhookResult(outcome="duplicate_event", duplicate_event=True)
        order: Order | None
        stored_outcome = record.outcome
        if is_ready:
            order, created = lifecycle.order_receive(channel=channel, intake=vendure.intake_from_vendure(order_data, received_at=now), actor=actor, now=now)
            record.outcome = Outcome.ORDER_CREATED if created else Outcome.DUPLICATE_ORDER
            token = tracking.tracking_link_create(order=order, now=now) if created else tracking_selectors.tracking_token_of_order(order.pk)
            if created:
                proof_services.handover_code_create(order=order, now=now)
            if created and vendure.order_cancelled_before_receipt(channel=channel, vendure_order_id=order.vendure_order_id, this_event=record):
                order_cancel_locked(order_id=order.pk, actor=actor, reason=f"{Order.SHOP_CANCEL_REASON} before it was received", now=now)
            elif created:
                order_dispatch_locked(order_id=order.pk, now=now, locked=order, fresh=True)
        else:
            token = None
            order = Order.objects.filter(channel=channel, vendure_order_id=order_data["id"]).first()
            record.outcome = _cancel_from_shop(channel, order, order_data, actor=actor, now=now)
        if record.outcome != stored_outcome:
            record.save(update_fields=["outcome"])
    return WebhookResult(outcome=record.outcome, order_id=order.pk if order else None, tracking_url=tracking_links.tracking_url(token) if token else None)


def _cancel_from_shop(channel: ShopChannel, order: Order | None, order_data: dict[str, Any], *, actor: Any, now: datetime) -> str:
    if order is None:
        vendure.cancel_before_receipt_record(channel=channel, order_data=order_data, actor=actor)
        return Outcome.CANCEL_BEFORE_RECEIPT
    if order.status in Order.TERMINAL_STATUSES:
        return Outcome.ALREADY_FINISHED
    try:
        order_cancel_locked(order_id=order.pk, actor=actor, reason=Order.SHOP_CANCEL_REASON, now=now)
    except IllegalTransition:
        return Outcome.ALREADY_FINISHED
    return Outcome.ORDER_CANCELLED


def order_receive(*, channel: ShopChannel, intake: lifecycle.OrderIntake, actor: Any, now: datetime | None = None) -> tuple[Order, bool]:
    """Store a shop's order once, without dispatching it (the assignment sweep will); returns
    (order, created)."""
    with transaction.atomic(durable=True):
        return lifecycle.order_receive(channel=channel, intake=intake, actor=actor, now=now or timezone.now())
