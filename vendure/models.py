from django.db import models
from django.db.models import Q

from dispatch.models import Order, ShopChannel


class WebhookEvent(models.Model):
    """One accepted webhook delivery, keyed by Vendure's event id: a retry is seen as a duplicate."""

    class Type(models.TextChoices):
        READY_FOR_DELIVERY = "order.ready_for_delivery", "Order ready for delivery"
        CANCELLED = "order.cancelled", "Order cancelled"

    class Outcome(models.TextChoices):
        ORDER_CREATED = "order_created", "Order created"
        DUPLICATE_ORDER = "duplicate_order", "Order already known (new event id)"
        ORDER_CANCELLED = "order_cancelled", "Order cancelled"
        CANCEL_BEFORE_RECEIPT = "cancel_before_receipt", "Cancellation of an order not received yet"
        ALREADY_FINISHED = "already_finished", "Order already finished"

    channel = models.ForeignKey(ShopChannel, on_delete=models.PROTECT, related_name="webhook_events")
    event_id = models.CharField(max_length=128)
    type = models.CharField(max_length=32, choices=Type.choices)
    vendure_order_id = models.CharField(max_length=64)
    order_code = models.CharField(max_length=64)
    created_at = models.DateTimeField(help_text="createdAt, as the shop stamped it")
    received_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=32, choices=Outcome.choices, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["channel", "event_id"], name="webhook_event_once")]
        indexes = [models.Index(fields=["channel", "vendure_order_id", "type"], name="webhook_order_type")]

    def __str__(self) -> str:
        return f"{self.type} {self.order_code} ({self.event_id})"


class FulfillmentReport(models.Model):
    """What has been reported to the shop for one order, so no step is ever sent twice.

    Its row lock serialises every call to the shop about the order; the steps still to
    report are FulfillmentStep rows.
    """

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="fulfillment_report")
    fulfillment_id = models.CharField(max_length=64, blank=True, help_text="Vendure Fulfillment id")
    shipped_reported_at = models.DateTimeField(null=True, blank=True)
    delivered_reported_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"fulfillment of {self.order_id}: {self.fulfillment_id or 'not created'}"


class FulfillmentStep(models.Model):
    """A step (pickup: Shipped, delivery: Delivered) the shop must hear about eventually.

    Written in the transaction of the order's pickup or delivery, so a step exists exactly
    when the change committed. The after-commit task only nudges; the sweep
    `report_fulfillments_due` sends every step whose attempt is due, so a dead worker or
    broker delays a report and never loses it. An attempt claims the step by pushing
    `next_attempt_at` past the calls' timeouts: a worker killed mid-call leaves a lease that
    runs out, and the next sweep retries (the report itself never creates two fulfillments).
    """

    class Step(models.TextChoices):
        SHIPPED = "Shipped", "Shipped (picked up)"
        DELIVERED = "Delivered", "Delivered"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        REPORTED = "reported", "Reported"
        SKIPPED = "skipped", "Skipped (no Admin API)"
        FAILED = "failed", "Failed (gave up)"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fulfillment_steps")
    step = models.CharField(max_length=16, choices=Step.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When the next attempt is due (pending only)")
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True, help_text="The kind of the last failure (never the shop's answer)")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["order", "step"], name="fulfillment_step_once")]
        # The sweep: pending steps by the time of their next attempt, and nothing else.
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(state="pending"), name="fulfillment_step_due")]

    def __str__(self) -> str:
        return f"{self.step} of order {self.order_id} ({self.state})"
