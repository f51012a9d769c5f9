"""Escalations in the ops console: act on them, and edit who is told, when and how."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from audit.actors import Actor
from dispatch.admin import (
    ActionFormMixin,
    AssignDriverForm,
    LookupsCheckedAdmin,
    ReadOnlyInline,
    ReasonForm,
    SecretsHiddenFromViewers,
    ServiceSavedAdmin,
    WriteOnlySecretsForm,
)
from dispatch.errors import DispatchError
from dispatch.models import Reassignment
from escalation import services
from escalation.models import AlertRoute, Escalation, EscalationLevel, EscalationPolicy, Notification, NotificationChannel, Team
from usecases import orders as order_usecases


class NotificationChannelForm(WriteOnlySecretsForm):
    """A Slack or webhook URL, a PagerDuty routing key and a signing secret each let whoever
    reads them post as us: write-only. An email channel's addresses are shown."""

    secret_fields = ("target", "secret")
    PUBLIC_TARGET_KINDS = (NotificationChannel.Kind.LOG, NotificationChannel.Kind.EMAIL)

    def secret_fields_here(self) -> list[str]:
        fields = super().secret_fields_here()
        if self.instance.pk and self.instance.kind in self.PUBLIC_TARGET_KINDS:
            fields = [name for name in fields if name != "target"]
        return fields


class NotificationChannelInline(SecretsHiddenFromViewers, admin.TabularInline):
    model = NotificationChannel
    form = NotificationChannelForm
    extra = 0
    fields = ["kind", "target", "secret", "is_active"]
    # Viewers see which channels a team has, never where they post or with what key.
    secret_fields = ("target", "secret")


@admin.register(Team)
class TeamAdmin(ServiceSavedAdmin):
    list_display = ["name", "slug", "description", "channel_list"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [NotificationChannelInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).prefetch_related("channels")

    @admin.display(description="Channels")
    def channel_list(self, team: Team) -> str:
        return ", ".join(c.get_kind_display() for c in team.channels.all() if c.is_active) or "log (default)"


@admin.register(AlertRoute)
class AlertRouteAdmin(ServiceSavedAdmin):
    """The ownership matrix: alert kind → team → its channels. docs/ownership.md mirrors it."""

    list_display = ["alert", "team", "runbook"]
    list_select_related = ["team"]
    list_editable = ["team"]
    list_filter = ["team"]


class EscalationLevelInline(admin.TabularInline):
    model = EscalationLevel
    extra = 0
    fields = ["level", "after_s", "team"]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(ServiceSavedAdmin):
    list_display = ["__str__", *EscalationPolicy.LIMIT_FIELDS]
    list_select_related = ["zone"]
    inlines = [EscalationLevelInline]
    fieldsets = [
        (None, {"fields": ["zone", "is_default"]}),
        ("Limits (empty: the default from settings)", {"fields": list(EscalationPolicy.LIMIT_FIELDS)}),
    ]


class NotificationInline(ReadOnlyInline):
    model = Notification
    fields = ["created_at", "event", "level", "team", "channel_kind", "state", "attempts", "sent_at", "next_attempt_at", "last_error"]
    readonly_fields = ["created_at", "event", "level", "team", "channel_kind", "state", "attempts", "sent_at", "next_attempt_at", "last_error"]


class EscalationInline(ReadOnlyInline):
    """The escalations of an order, on the order's page, each linking to where ops act on it."""

    model = Escalation
    show_change_link = True
    fields = readonly_fields = ("trigger", "state", "level", "opened_at", "next_level_at", "acknowledged_by", "resolved_at", "resolution")
    ordering = ["opened_at"]


class MinutesForm(forms.Form):
    minutes = forms.IntegerField(min_value=1, max_value=settings.ESCALATION_MAX_EXTENSION_MIN, initial=15, help_text="More time for the order")


@admin.register(Escalation)
class EscalationAdmin(ActionFormMixin, LookupsCheckedAdmin):
    """Ops act on escalations here; every action goes through a service, audited with the user."""

    list_display = ["id", "order_link", "trigger", "zone", "level", "state", "opened_at", "next_level_at", "acknowledged_by", "resolution"]
    list_filter = ["state", "trigger", "level", "zone"]
    search_fields = ["order__code", "=order__id"]
    list_select_related = ["order", "zone"]
    date_hierarchy = "opened_at"
    inlines = [NotificationInline]
    actions = ["acknowledge", "resolve", "assign_to_driver", "reassign", "extend", "cancel_order"]

    def get_readonly_fields(self, request: HttpRequest, obj: Escalation | None = None) -> list[str]:
        return [f.name for f in Escalation._meta.fields] + ["audit_link"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Escalation | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Escalation, form: forms.ModelForm, change: bool) -> None:
        """Every field is read-only and state moves only through the actions' services: the
        form's Save writes nothing (a plain save would write back the whole row, unaudited,
        over a change a sweep or a driver made a moment before)."""

    @admin.display(description="Order", ordering="order__code")
    def order_link(self, escalation: Escalation) -> str:
        order = escalation.order
        return format_html('<a href="{}">{}</a> ({})', reverse("admin:dispatch_order_change", args=[order.pk]), order.code, order.get_status_display())

    @admin.display(description="Audit trail")
    def audit_link(self, escalation: Escalation) -> str:
        return format_html('<a href="{}?order_id={}">Story of this order</a>', reverse("admin:audit_auditevent_changelist"), escalation.order_id)

    def _each(self, request: HttpRequest, queryset: QuerySet[Escalation], call: Callable[[Escalation, Actor], Any], verb: str) -> None:
        actor = Actor.staff(request.user)
        done = 0
        for escalation in queryset.select_related("order"):
            try:
                call(escalation, actor)
                done += 1
            except DispatchError as exc:
                self.message_user(request, f"Escalation {escalation.pk} (order {escalation.order.code}): {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} escalation(s): {verb}.", messages.SUCCESS)

    @admin.action(description="Acknowledge (stop the climb)", permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> None:
        self._each(request, queryset, lambda e, actor: services.escalation_acknowledge(escalation_id=e.pk, actor=actor), "acknowledged")

    @admin.action(description="Resolve with a note", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> HttpResponse | None:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._form_page(request, queryset, form, "resolve", "Resolve escalations")
        reason = form.cleaned_data["reason"]
        self._each(request, queryset, lambda e, actor: services.escalation_resolve(escalation_id=e.pk, actor=actor, resolution=reason), "resolved")
        return None

    @admin.action(description="Assign the order to a chosen driver", permissions=["change"])
    def assign_to_driver(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> HttpResponse | None:
        form = AssignDriverForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._form_page(request, queryset, form, "assign_to_driver", "Assign the orders to a driver")
        driver = form.cleaned_data["driver"]
        self._each(
            request,
            queryset,
            lambda e, actor: order_usecases.order_assign_manually(order_id=e.order_id, driver_id=driver.pk, actor=actor),
            f"orders assigned to {driver}",
        )
        return None

    @admin.action(description="Reassign the order to the next driver", permissions=["change"])
    def reassign(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> None:
        self._each(
            request,
            queryset,
            lambda e, actor: order_usecases.order_reassign(order_id=e.order_id, reason=Reassignment.Reason.BY_OPS, actor=actor),
            "orders reassigned",
        )

    @admin.action(description="Extend the time limit", permissions=["change"])
    def extend(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> HttpResponse | None:
        form = MinutesForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._form_page(request, queryset, form, "extend", "Give the orders more time")
        minutes = form.cleaned_data["minutes"]
        self._each(
            request, queryset, lambda e, actor: services.escalation_extend(escalation_id=e.pk, minutes=minutes, actor=actor), f"extended by {minutes} min"
        )
        return None

    @admin.action(description="Cancel the order with a reason", permissions=["change"])
    def cancel_order(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> HttpResponse | None:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._form_page(request, queryset, form, "cancel_order", "Cancel the orders")
        reason = form.cleaned_data["reason"]
        self._each(request, queryset, lambda e, actor: order_usecases.order_cancel(order_id=e.order_id, actor=actor, reason=reason), "orders cancelled")
        return None
