"""Sweep runs in the ops console, read-only: when each timer last ran and how it went."""

from django.contrib import admin

from dispatch.admin import ReadOnlyAdmin
from observability.models import SweepRun


@admin.register(SweepRun)
class SweepRunAdmin(ReadOnlyAdmin):
    list_display = ["name", "last_finished_at", "last_duration_s", "last_result", "runs", "last_error"]
