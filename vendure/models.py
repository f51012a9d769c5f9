from django.db import models

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
    """What has been reported to the shop for one order, so no step is ever sent twice."""

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="fulfillment_report")
    fulfillment_id = models.CharField(max_length=64, blank=True, help_text="Vendure Fulfillment id")
    shipped_reported_at = models.DateTimeField(null=True, blank=True)
    delivered_reported_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"fulfillment of {self.order_id}: {self.fulfillment_id or 'not created'}"
