"""Offers in the ops console: read-only, the story of who was asked and what they said."""

from django.contrib import admin

from dispatch.admin import ReadOnlyAdmin, ReadOnlyInline
from offers.models import Offer


@admin.register(Offer)
class OfferAdmin(ReadOnlyAdmin):
    list_display = ["id", "order", "driver", "state", "created_at", "expires_at", "answered_at", "withdrawn_reason", "decline_reason", "distance_m"]
    list_filter = ["state", "withdrawn_reason", "order__zone"]
    search_fields = ["order__code", "driver__name", "=order__id"]
    list_select_related = ["order", "driver"]
    date_hierarchy = "created_at"


class OfferInline(ReadOnlyInline):
    """The offers of an order, on the order's page in the ops console."""

    model = Offer
    fields = readonly_fields = ("driver", "state", "created_at", "expires_at", "answered_at", "withdrawn_reason", "decline_reason", "distance_m")
    ordering = ["created_at"]
