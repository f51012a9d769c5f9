"""Webhook intake and progress reporting for Vendure shops."""

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from rest_framework.serializers import ValidationError

from audit.actors import SYSTEM, Actor
from audit.services import audit_record
from dispatch import limits
from dispatch import services as dispatch_services
from dispatch.after_commit import after_commit
from dispatch.clock import database_now
from dispatch.errors import InvalidInput
from dispatch.models import Order, ShopChannel
from dispatch.rows import row_ids, row_insert_unless_conflict, rows_read
from tracking.selectors import tracking_link_shown
from vendure.admin_api import VendureAdminClient, VendureRejected, VendureUnavailable
from vendure.models import FulfillmentReport, FulfillmentStep, WebhookEvent
from vendure.payloads import event_validated
from vendure.signing import SignatureRefused, verify

logger = logging.getLogger(__name__)

Outcome = WebhookEvent.Outcome


def webhook_authenticate(*, channel_token: str, signature: str, body: bytes) -> ShopChannel:
    """The channel that signed this body; SignatureRefused when the delivery is not trusted."""
    # A token no column could hold (NUL, lone surrogate, too long) names no channel; PostgreSQL
    # would refuse even to compare it.
    is_usable = bool(channel_token) and len(channel_token) <= 128 and limits.storable_text_problem(channel_token) is None
    # Every webhook, and the bare baseline it is measured against: in SQL text (dispatch.rows).
    channels = rows_read(ShopChannel, token=channel_token, is_active=True) if is_usable else []
    channel = channels[0] if channels else None
    if channel is None:
        raise SignatureRefused("unknown or missing channel (X-Dispatch-Channel)")
    if not signature:
        raise SignatureRefused("missing X-Dispatch-Signature")
    verify(channel.webhook_secret, signature, body, tolerance_s=settings.DISPATCH_WEBHOOK_TOLERANCE_S)
    return channel


def shop_actor(channel: ShopChannel) -> Actor:
    return Actor.shop(channel.token, channel.name)


def _item_summary(lines: list[dict[str, Any]]) -> str:
    summary = ", ".join(f"{line['quantity']}× {line['productVariant']['name']}" for line in lines)
    return summary if len(summary) <= 500 else summary[:497] + "..."


def intake_from_vendure(order: dict[str, Any], *, received_at: datetime) -> dispatch_services.OrderIntake:
    """Map Vendure's order (GraphQL names) to our intake; the delivery fee is shippingWithTax."""
    address = dict(order["shippingAddress"])
    coords = address.get("customFields") or {}
    customer = order["customer"]
    custom = order.get("customFields") or {}
    name = " ".join(part for part in (customer.get("firstName"), customer.get("lastName")) if part) or address.get("fullName") or ""
    # Validated (a real moment, with its zone, in range) by OrderCustomFieldsSerializer.
    promised_at = custom.get("promisedDeliveryAt") or received_at + timedelta(minutes=settings.DISPATCH_DEFAULT_PROMISE_MIN)
    lines = [{"id": line["id"], "quantity": line["quantity"], "productVariant": dict(line["productVariant"])} for line in order["lines"]]
    return dispatch_services.OrderIntake(
        vendure_order_id=order["id"],
        code=order["code"],
        vendure_state=order["state"],
        currency=order["currencyCode"].upper(),
        total_minor=order["totalWithTax"],
        delivery_fee_minor=order["shippingWithTax"],
        placed_at=order.get("orderPlacedAt"),
        dropoff_address={k: v for k, v in address.items() if k != "customFields"},
        dropoff_postal_code=address.get("postalCode") or "",
        dropoff_lat=coords.get("latitude"),
        dropoff_lon=coords.get("longitude"),
        customer_name=name[:200],
        customer_phone=(customer.get("phoneNumber") or address.get("phoneNumber") or "")[:64],
        customer_email=customer.get("emailAddress") or "",
        lines=lines,
        item_summary=_item_summary(lines),
        promised_at=promised_at,
    )


def webhook_event_parse(payload: Any) -> dict[str, Any]:
    """The event of a webhook body, validated to what the database can hold, or InvalidInput."""
    if not isinstance(payload, dict):
        raise InvalidInput("The webhook body is not a valid event.", fields={"non_field_errors": ["The body must be a JSON object."]})
    try:
        return event_validated(payload)
    except ValidationError as exc:
        raise InvalidInput("The webhook body is not a valid event.", fields=exc.detail) from exc


def webhook_event_record(*, channel: ShopChannel, event: dict[str, Any], expected_outcome: str = "") -> WebhookEvent | None:
    """Record a delivered event once, in the caller's transaction; None when it was delivered
    before. `expected_outcome` is stored with it, so the usual case needs no second write."""
    order_data = event["order"]
    record = WebhookEvent(channel=channel, event_id=event["id"], type=event["type"], created_at=event["createdAt"], outcome=expected_outcome)
    record.vendure_order_id, record.order_code = order_data["id"], order_data["code"]
    return record if row_insert_unless_conflict(record) else None


def order_cancelled_before_receipt(*, channel: ShopChannel, vendure_order_id: str, this_event: WebhookEvent) -> bool:
    """Events can arrive out of order: whether the shop cancelled this order before we had it."""
    cancellations = row_ids(WebhookEvent, channel_id=channel.pk, vendure_order_id=vendure_order_id, type=WebhookEvent.Type.CANCELLED)
    return any(event_id != this_event.pk for event_id in cancellations)


def cancel_before_receipt_record(*, channel: ShopChannel, order_data: dict[str, Any], actor: Actor) -> None:
    """A cancellation for an order we do not have yet: on record, so it is cancelled on arrival."""
    audit_record(
        "order.cancel_before_receipt",
        actor=actor,
        subject_type="vendure_order",
        subject_id=order_data["id"],
        order_code=order_data["code"],
        data={"channel": channel.token},
    )


# --- Progress back to the shop ------------------------------------------------------------

STEP_SHIPPED, STEP_DELIVERED = FulfillmentStep.Step.SHIPPED, FulfillmentStep.Step.DELIVERED


def _client_for(channel: ShopChannel) -> VendureAdminClient | None:
    if not channel.admin_api_url or not channel.admin_api_token:
        return None
    return VendureAdminClient(url=channel.admin_api_url, token=channel.admin_api_token, channel_token=channel.token)


def fulfillment_report(*, order_id: int, step: str) -> str:
    """Report pickup (`Shipped`) or delivery (`Delivered`) to the shop, each step at most once.

    Every remote call happens under a row lock on the order's report and its result is
    committed before the next call, so a retry resumes where the last attempt stopped and
    two workers never both send a step. Raises VendureUnavailable for the task to retry.
    """
    if step not in FulfillmentStep.Step.values:
        raise InvalidInput(f"unknown fulfillment step {step!r}")
    order = Order.objects.select_related("channel", "driver").get(pk=order_id)
    client = _client_for(order.channel)
    if client is None:
        with transaction.atomic():
            dispatch_services.order_audit_record(
                order, actor=SYSTEM, kind="vendure.report_skipped", step=step, reason="the shop channel has no Admin API configured"
            )
        return "skipped"
    FulfillmentReport.objects.get_or_create(order=order)
    _fulfillment_ensure_created(order, client)
    _fulfillment_ensure_state(order, client, STEP_SHIPPED)
    if step == STEP_DELIVERED:
        _fulfillment_ensure_state(order, client, STEP_DELIVERED)
    return "reported"


def _fulfillment_method(order: Order) -> str:
    """The fulfillment's method as the shop's staff and customer see it: the driver, and the
    customer's tracking link while it works (the order's reference stays the tracking code,
    which finds the fulfillment again after a lost answer)."""
    method = f"Dispatch driver: {order.driver.name if order.driver else 'unknown'}"
    link = tracking_link_shown(order.pk)
    return f"{method} · track: {link.url}" if link.status == "live" else method


def _fulfillment_ensure_created(order: Order, client: VendureAdminClient) -> None:
    with transaction.atomic():
        report = FulfillmentReport.objects.select_for_update().get(order=order)
        if report.fulfillment_id:
            return
        report.attempts += 1
        lines = [{"orderLineId": line["id"], "quantity": line["quantity"]} for line in order.lines if line.get("quantity")]
        try:
            fulfillment_id = client.add_fulfillment(lines=lines, method=_fulfillment_method(order), tracking_code=order.reference)
        except VendureRejected as exc:
            if exc.error_code != "ITEMS_ALREADY_FULFILLED_ERROR":
                raise
            # An earlier attempt created it but did not live to record it: adopt that one.
            existing = client.fulfillment_with_tracking_code(order_id=order.vendure_order_id, tracking_code=order.reference)
            if existing is None:
                raise
            fulfillment_id = str(existing["id"])
        report.fulfillment_id = fulfillment_id
        report.last_error = ""
        report.save(update_fields=["fulfillment_id", "attempts", "last_error"])
        dispatch_services.order_audit_record(
            order, actor=SYSTEM, kind="vendure.fulfillment_created", fulfillment_id=fulfillment_id, tracking_code=order.reference
        )


def _fulfillment_ensure_state(order: Order, client: VendureAdminClient, state: str) -> None:
    field = "shipped_reported_at" if state == STEP_SHIPPED else "delivered_reported_at"
    with transaction.atomic():
        report = FulfillmentReport.objects.select_for_update().get(order=order)
        if getattr(report, field) is not None:
            return
        report.attempts += 1
        client.transition_fulfillment(fulfillment_id=report.fulfillment_id, state=state)
        setattr(report, field, timezone.now())
        report.last_error = ""
        report.save(update_fields=[field, "attempts", "last_error"])
        dispatch_services.order_audit_record(order, actor=SYSTEM, kind=f"vendure.{state.lower()}_reported", fulfillment_id=report.fulfillment_id)


def fulfillment_report_failed(*, order_id: int, step: str, error: str) -> None:
    """The shop could not be told (retries exhausted or refused): keep it on record for ops.

    `error` is a failure's kind (VendureUnavailable and VendureRejected carry nothing else),
    never what the shop answered.
    """
    order = Order.objects.get(pk=order_id)
    with transaction.atomic():
        FulfillmentReport.objects.get_or_create(order=order)
        FulfillmentReport.objects.filter(order=order).update(last_error=error[:500])
        dispatch_services.order_audit_record(order, actor=SYSTEM, kind="vendure.report_failed", step=step, error=error[:500])


# --- The steps still to report: rows with a deadline, sent by a nudge or by the sweep -------

# How long the sweep claims new steps in one run; what is left waits for the next run, so
# one run never outlives the broker's visibility timeout (CELERY_BROKER_TRANSPORT_OPTIONS).
REPORT_SWEEP_BUDGET_S = 60.0


def fulfillment_step_schedule(*, order_id: int, step: str) -> None:
    """Inside the transaction of the pickup or delivery: the shop must hear of it eventually.

    The row is the promise (due at once, by the database's clock); the task enqueued after
    commit only saves the sweep's wait.
    """
    now = database_now()
    if row_insert_unless_conflict(FulfillmentStep(order_id=order_id, step=step, created_at=now, next_attempt_at=now)):
        after_commit(lambda: _nudge(order_id, step))


def _nudge(order_id: int, step: str) -> None:
    from vendure.tasks import report_fulfillment_step

    report_fulfillment_step.delay(order_id, step)


def _report_lease_s() -> float:
    # Long enough for every call of one attempt to time out (create, look up, two moves),
    # plus waiting for the order's other step: a claim outlives only a dead worker.
    return settings.VENDURE_TIMEOUT_S * 4 + 10


def _report_backoff_s(attempts: int) -> float:
    return float(min(settings.VENDURE_REPORT_BACKOFF_S * 2 ** (attempts - 1), settings.VENDURE_REPORT_BACKOFF_MAX_S))


def _fulfillment_step_claim(now: datetime, **which: Any) -> FulfillmentStep | None:
    """Take one due step for an attempt: attempts + 1, and the next attempt pushed past the
    lease, committed before any call, so no other worker or sweep runs the same attempt."""
    with transaction.atomic():
        row = (
            FulfillmentStep.objects.select_for_update(skip_locked=True)
            .filter(state=FulfillmentStep.State.PENDING, next_attempt_at__lte=now, **which)
            .order_by("next_attempt_at")
            .first()
        )
        if row is None:
            return None
        row.attempts += 1
        row.next_attempt_at = now + timedelta(seconds=_report_lease_s())
        row.save(update_fields=["attempts", "next_attempt_at"])
    return row


def fulfillment_step_send(*, order_id: int, step: str, now: datetime | None = None) -> str | None:
    """Report one step now if it is due; None when it is not (done, or another worker has it)."""
    row = _fulfillment_step_claim(now or database_now(), order_id=order_id, step=step)
    return _fulfillment_step_attempt(row) if row is not None else None


def report_fulfillments_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Sweep: report every step whose attempt is due (new, retried, or left by a dead worker).

    Steps are claimed one at a time through the partial index on due pending steps, with
    SKIP LOCKED, so two sweeps (or a sweep and a nudge) share the work and never repeat it.
    Returns how many steps were reported.
    """
    now = now or database_now()
    stop_at = time.monotonic() + REPORT_SWEEP_BUDGET_S
    reported = 0
    for _ in range(limit):
        row = _fulfillment_step_claim(now)
        if row is None:
            break
        reported += _fulfillment_step_attempt(row) == FulfillmentStep.State.REPORTED
        if time.monotonic() > stop_at:
            break
    return reported


def _fulfillment_step_attempt(row: FulfillmentStep) -> str:
    """Run a claimed attempt and record its outcome; returns the step's state afterwards."""
    try:
        outcome = fulfillment_report(order_id=row.order_id, step=row.step)
    except VendureRejected as exc:
        return _fulfillment_step_finish(row, FulfillmentStep.State.FAILED, error=str(exc))
    except (VendureUnavailable, DatabaseError) as exc:
        # A database failure mid-attempt (or a shop answer we did not foresee) retries like a shop
        # that is down, within the same cap, so no row is retried for ever.
        if row.attempts > settings.VENDURE_REPORT_MAX_RETRIES:
            return _fulfillment_step_finish(row, FulfillmentStep.State.FAILED, error=f"gave up after {row.attempts - 1} retries: {exc}")
        retry_at = database_now() + timedelta(seconds=_report_backoff_s(row.attempts))
        FulfillmentStep.objects.filter(pk=row.pk, state=FulfillmentStep.State.PENDING, attempts=row.attempts).update(
            next_attempt_at=retry_at, last_error=str(exc)[:200]
        )
        logger.warning("report of %s for order %s failed (attempt %s), retrying: %s", row.step, row.order_id, row.attempts, exc)
        return FulfillmentStep.State.PENDING
    state = FulfillmentStep.State.SKIPPED if outcome == "skipped" else FulfillmentStep.State.REPORTED
    return _fulfillment_step_finish(row, state)


def _fulfillment_step_finish(row: FulfillmentStep, state: str, *, error: str = "") -> str:
    """Close the step, if this attempt still holds it (a newer attempt records its own outcome)."""
    with transaction.atomic():
        closed = FulfillmentStep.objects.filter(pk=row.pk, state=FulfillmentStep.State.PENDING, attempts=row.attempts).update(
            state=state, next_attempt_at=None, finished_at=database_now(), last_error=error[:200]
        )
        if closed and state == FulfillmentStep.State.FAILED:
            fulfillment_report_failed(order_id=row.order_id, step=row.step, error=error)
    return state
