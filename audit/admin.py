"""The audit trail in the ops console: searchable, and read-only for everyone."""

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent
from audit.selectors import is_plain_id
from dispatch.admin import LookupsCheckedAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(LookupsCheckedAdmin):
    list_display = ["occurred_at", "kind", "actor", "subject", "order_code", "change", "correlation_id"]
    list_filter = ["kind", "actor_kind", "subject_type"]
    search_fields = ["order_code", "correlation_id", "subject_id", "actor_label", "=order_id", "=driver_id"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False

    @admin.display(description="Actor", ordering="actor_label")
    def actor(self, event: AuditEvent) -> str:
        return f"{event.get_actor_kind_display()}: {event.actor_label}" if event.actor_label else event.get_actor_kind_display()

    @admin.display(description="Subject")
    def subject(self, event: AuditEvent) -> str:
        return f"{event.subject_type} {event.subject_id}"

    @admin.display(description="Before → after")
    def change(self, event: AuditEvent) -> str:
        def brief(state: object) -> str:
            if isinstance(state, dict):
                return ", ".join(f"{k}={v}" for k, v in state.items())
            return "" if state is None else str(state)

        return f"{brief(event.before) or '—'} → {brief(event.after) or '—'}"

    def get_queryset(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        queryset = super().get_queryset(request)
        # Deep links from an order or driver page: ?order_id=<pk> / ?driver_id=<pk>.
        for key in ("order_id", "driver_id"):
            value = request.GET.get(key, "")
            if is_plain_id(value):
                queryset = queryset.filter(**{key: int(value)})
        return queryset

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        return lookup in ("order_id", "driver_id") or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
