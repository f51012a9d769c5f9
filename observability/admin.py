"""Sweep runs in the ops console, read-only: when each timer last ran and how it went."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from observability.models import SweepRun


@admin.register(SweepRun)
class SweepRunAdmin(admin.ModelAdmin):
    list_display = ["name", "last_finished_at", "last_duration_s", "last_result", "runs", "last_error"]
    readonly_fields = ["name", "last_started_at", "last_finished_at", "last_duration_s", "last_result", "last_error", "runs"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
