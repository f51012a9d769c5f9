"""Webhook deliveries and fulfillment reports, read-only in the ops console."""

from django.contrib import admin

from dispatch.admin import ReadOnlyAdmin
from vendure.models import FulfillmentReport, WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "channel", "type", "order_code", "event_id", "outcome"]
    list_filter = ["type", "outcome", "channel"]
    search_fields = ["order_code", "event_id", "vendure_order_id"]


@admin.register(FulfillmentReport)
class FulfillmentReportAdmin(ReadOnlyAdmin):
    list_display = ["order", "fulfillment_id", "shipped_reported_at", "delivered_reported_at", "attempts", "last_error"]
    search_fields = ["order__code", "fulfillment_id"]
