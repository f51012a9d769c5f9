"""Offers in the ops console: read-only, the story of who was asked and what they said."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from offers.models import Offer


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    list_display = ["id", "order", "driver", "state", "created_at", "expires_at", "answered_at", "withdrawn_reason", "decline_reason", "distance_m"]
    list_filter = ["state", "withdrawn_reason", "order__zone"]
    search_fields = ["order__code", "driver__name", "=order__id"]
    list_select_related = ["order", "driver"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OfferInline(admin.TabularInline):
    """The offers of an order, on the order's page in the ops console."""

    model = Offer
    extra = 0
    can_delete = False
    fields = readonly_fields = ("driver", "state", "created_at", "expires_at", "answered_at", "withdrawn_reason", "decline_reason", "distance_m")
    ordering = ["created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
