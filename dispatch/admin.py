"""The ops console: zones, shops, drivers and orders. Every change goes through a service."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import DataError, models
from django.db.models import QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy

from audit.actors import Actor
from dispatch import services
from dispatch.errors import DispatchError
from dispatch.models import ApiToken, Driver, Order, ShopChannel, Zone
from dispatch.services import AUDIT_HIDDEN_FIELDS
from usecases import drivers as driver_usecases
from usecases import orders as order_usecases

admin.site.site_header = "Dispatch ops console"
admin.site.site_title = "Dispatch ops"
admin.site.index_title = "Zones, drivers, orders and the audit trail"


# Fields no list may be filtered by: `?webhook_secret__startswith=a` would let anyone who may
# view the list read the secret back one character at a time (and a password hash, a token key).
SECRET_LOOKUP_FIELDS = frozenset(AUDIT_HIDDEN_FIELDS | {"password", "key"})


class LookupsCheckedAdmin(admin.ModelAdmin):
    """A list whose query-string filters cannot make a 500 nor read a secret.

    Django's admin filters any field from the query string (`?placed_at__year=99999`) and
    catches bad values while building the filter, but a year past 9999, or a NUL that
    PostgreSQL refuses in text, fails only when the query runs (counting the results, still
    while the list is built). That is answered the way Django answers every other bad lookup:
    a redirect to the list with `?e=1`. A lookup through a secret field is refused (400).
    """

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        if any(part in SECRET_LOOKUP_FIELDS for part in lookup.split(LOOKUP_SEP)):
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        try:
            return super().get_changelist_instance(request)
        except (ValueError, OverflowError, DataError) as exc:
            if not request.GET:
                raise  # no lookup in the query string: a bug of ours, not a bad filter
            raise IncorrectLookupParameters(exc) from exc


class ReadOnlyAdmin(LookupsCheckedAdmin):
    """Records written only by services (offers, webhook deliveries, sweep runs): shown, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """Rows of a record's story on its page (an order's offers, an escalation's notifications)."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EscapedJSONFormField(forms.JSONField):
    """Django's JSON form field, showing the value back escaped to ASCII.

    Django shows a refused value with ensure_ascii=False: a lone surrogate typed as `\\udc00`
    then makes the error page itself unencodable, a 500 instead of the form error.
    """

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, cls=self.encoder)


class ServiceSavedAdmin(LookupsCheckedAdmin):
    """Saves and deletes through services, so each edit (inline rows too) is audited with the staff user."""

    formfield_overrides = {models.JSONField: {"form_class": EscapedJSONFormField}}

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        m2m_after = {name: [str(v) for v in form.cleaned_data[name]] for name in form.changed_data if obj._meta.get_field(name).many_to_many}
        services.reference_data_save(
            instance=obj, changed_fields=list(form.changed_data), is_new=not change, actor=Actor.staff(request.user), m2m_after=m2m_after
        )

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        actor = Actor.staff(request.user)
        formset.save(commit=False)
        for obj in formset.deleted_objects:
            services.reference_data_delete(instance=obj, actor=actor)
        for obj in formset.new_objects:
            fields = [f.name for f in obj._meta.concrete_fields if not f.auto_created]
            services.reference_data_save(instance=obj, changed_fields=fields, is_new=True, actor=actor)
        for obj, changed_fields in formset.changed_objects:
            services.reference_data_save(instance=obj, changed_fields=list(changed_fields), is_new=False, actor=actor)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.reference_data_delete(instance=obj, actor=Actor.staff(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            services.reference_data_delete(instance=obj, actor=Actor.staff(request.user))


class WriteOnlySecretsForm(forms.ModelForm):
    """A form whose `secret_fields` can be set and never read back: their inputs start empty
    (the stored value is never sent to the browser), and an input left empty keeps the stored
    value. A new value is recorded in the audit trail as changed, never by value."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.secret_fields_here():
            field = self.fields[name]
            field.widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            self.initial[name] = ""  # nothing to show, and "unchanged" when left empty
            if self.instance.pk and getattr(self.instance, name):
                field.required = False
                field.help_text = "Set, and never shown again. Leave empty to keep it; type a new value to replace it."

    def secret_fields_here(self) -> list[str]:
        return [name for name in self.secret_fields if name in self.fields]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in self.secret_fields_here():
            if self.instance.pk and not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name)
                self.errors.pop(name, None)
        return cleaned


class SecretsHiddenFromViewers:
    """Staff who may only view a record (support, finance) get its page without its secrets:
    Django shows every field of a view-only page as text, and a secret as text is read."""

    secret_fields: tuple[str, ...] = ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)  # type: ignore[misc]
        if self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            return fields
        return [name for name in fields if name not in self.secret_fields]


class ActionFormMixin:
    """Admin actions that ask for something first (a driver, a reason) on an intermediate page."""

    admin_site: admin.AdminSite
    model: Any

    def _form_page(self, request: HttpRequest, queryset: QuerySet[Any], form: forms.Form, action: str, title: str) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "title": title, "items": queryset, "form": form, "action": action, "opts": self.model._meta}
        return TemplateResponse(request, "admin/action_form.html", context)


@admin.register(Zone)
class ZoneAdmin(ServiceSavedAdmin):
    list_display = ["name", "slug", "is_active", "postal_code_prefixes", "has_area", "driver_count"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    @admin.display(boolean=True, description="Polygon")
    def has_area(self, zone: Zone) -> bool:
        return zone.area is not None

    @admin.display(description="Drivers")
    def driver_count(self, zone: Zone) -> int:
        return zone.drivers.count()


class ShopChannelForm(WriteOnlySecretsForm):
    secret_fields = ("webhook_secret", "admin_api_token")
    admin_api_url = forms.URLField(assume_scheme="https", required=False, help_text="Vendure Admin API, e.g. https://shop.example/admin-api")

    class Meta:
        model = ShopChannel
        fields = [
            "token",
            "name",
            "webhook_secret",
            "pickup_address",
            "pickup_lat",
            "pickup_lon",
            "admin_api_url",
            "admin_api_token",
            "requires_handover_code",
            "is_active",
        ]


@admin.register(ShopChannel)
class ShopChannelAdmin(SecretsHiddenFromViewers, ServiceSavedAdmin):
    form = ShopChannelForm
    secret_fields = ShopChannelForm.secret_fields
    list_display = ["name", "token", "pickup_address", "pickup_lat", "pickup_lon", "reports_progress", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "token"]

    @admin.display(boolean=True, description="Reports to Vendure")
    def reports_progress(self, channel: ShopChannel) -> bool:
        return bool(channel.admin_api_url and channel.admin_api_token)


class DriverForm(forms.ModelForm):
    class Meta:
        model = Driver
        fields = ["user", "name", "phone", "vehicle", "zones", "capacity"]

    def clean_capacity(self) -> int:
        capacity = self.cleaned_data["capacity"]
        if self.instance.pk and capacity < self.instance.active_order_count:
            raise forms.ValidationError(f"The driver holds {self.instance.active_order_count} orders now; capacity cannot be lower.")
        return capacity


@admin.register(Driver)
class DriverAdmin(ServiceSavedAdmin):
    form = DriverForm
    list_display = ["name", "phone", "vehicle", "availability", "load", "zone_list", "last_position_at", "idle_since"]
    list_filter = ["availability", "vehicle", "zones"]
    search_fields = ["name", "phone", "user__username"]
    autocomplete_fields = ["user"]
    filter_horizontal = ["zones"]
    readonly_fields = ["availability", "active_order_count", "availability_changed_at", "idle_since", "last_lat", "last_lon", "last_position_at", "audit_link"]
    actions = ["go_online", "go_offline"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Driver]:
        return super().get_queryset(request).prefetch_related("zones")

    @admin.display(description="Load")
    def load(self, driver: Driver) -> str:
        return f"{driver.active_order_count}/{driver.capacity}"

    @admin.display(description="Zones")
    def zone_list(self, driver: Driver) -> str:
        return ", ".join(z.name for z in driver.zones.all())

    @admin.display(description="Audit trail")
    def audit_link(self, driver: Driver) -> str:
        return format_html('<a href="{}?driver_id={}">Events of this driver</a>', reverse("admin:audit_auditevent_changelist"), driver.pk)

    def _each(self, request: HttpRequest, queryset: QuerySet[Driver], action: Any, verb: str) -> None:
        done = 0
        for driver in queryset:
            try:
                action(driver_id=driver.pk, actor=Actor.staff(request.user))
                done += 1
            except DispatchError as exc:
                self.message_user(request, f"{driver}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{done} driver(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Set selected drivers online", permissions=["change"])
    def go_online(self, request: HttpRequest, queryset: QuerySet[Driver]) -> None:
        self._each(request, queryset, driver_usecases.driver_go_online, "online")

    @admin.action(description="Set selected drivers offline", permissions=["change"])
    def go_offline(self, request: HttpRequest, queryset: QuerySet[Driver]) -> None:
        self._each(request, queryset, driver_usecases.driver_go_offline, "offline")


class AssignDriverForm(forms.Form):
    driver = forms.ModelChoiceField(queryset=Driver.objects.order_by("name"), help_text="Any driver with free capacity")


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=255)


# Dispatch decisions shown on an order's page (the timeline has them all).
DECISIONS_SHOWN = 5


@admin.register(Order)
class OrderAdmin(ActionFormMixin, LookupsCheckedAdmin):
    list_display = ["code", "channel", "zone", "status", "driver", "customer_name", "fee", "received_at", "status_changed_at", "promised_at"]
    list_filter = ["status", "zone", "channel", "waiting_reason"]
    search_fields = ["code", "vendure_order_id", "customer_name", "customer_phone", "driver__name"]
    date_hierarchy = "received_at"
    list_select_related = ["channel", "zone", "driver"]
    actions = ["assign_to_driver", "unassign", "cancel", "revoke_tracking_link"]
    ordering = ["-received_at"]

    def get_inlines(self, request: HttpRequest, obj: Order | None) -> list[Any]:
        from escalation.admin import EscalationInline  # all build on orders, not the other way round
        from offers.admin import OfferInline
        from proof.admin import DeliveryProofInline

        return [OfferInline, EscalationInline, DeliveryProofInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Order | None = None) -> list[str]:
        # Orders come from shops and change only through the actions: nothing is edited in place.
        return [f.name for f in Order._meta.fields] + ["tracking_link", "audit_link", "dispatch_decisions"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Order, form: forms.ModelForm, change: bool) -> None:
        """Every field is read-only and state moves only through the actions' services: the
        form's Save writes nothing (a plain save would write back the whole row, unaudited,
        over a change a sweep or a driver made a moment before)."""

    @admin.display(description="Fee")
    def fee(self, order: Order) -> str:
        return f"{order.delivery_fee_minor / 100:.2f} {order.currency}"

    @admin.display(description="Why this driver (last dispatch decisions)")
    def dispatch_decisions(self, order: Order) -> str:
        """What each of the order's last dispatch decisions saw, newest first (its audit
        events `dispatch.decided`): every name and reason is escaped."""
        from audit.decisions import decision_lines
        from audit.models import AuditEvent

        events = AuditEvent.objects.filter(order_id=order.pk, kind="dispatch.decided").order_by("-occurred_at", "-id")[:DECISIONS_SHOWN]
        blocks = [
            format_html(
                "<p><strong>{}</strong> · {}</p><ul>{}</ul>",
                event.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
                (event.after or {}).get("outcome", "—"),
                format_html_join("", "<li>{}</li>", ((line,) for line in decision_lines(event.data))),
            )
            for event in events
        ]
        return format_html_join("", "{}", ((block,) for block in blocks)) if blocks else "—"

    @admin.display(description="Customer's tracking link")
    def tracking_link(self, order: Order) -> str:
        from tracking.selectors import tracking_link_shown  # tracking builds on orders, not the other way round

        return tracking_link_shown(order.pk).as_html()

    @admin.display(description="Audit trail")
    def audit_link(self, order: Order) -> str:
        return format_html(
            '<a href="{}?order_id={}">Story of this order</a> · <a href="{}">Timeline</a>',
            reverse("admin:audit_auditevent_changelist"),
            order.pk,
            reverse("support:order-timeline", args=[order.pk]),
        )

    def _apply(self, request: HttpRequest, queryset: QuerySet[Order], call: Any, verb: str) -> None:
        done = 0
        for order in queryset:
            try:
                call(order)
                done += 1
            except DispatchError as exc:
                self.message_user(request, f"{order.code}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} order(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Assign to a chosen driver", permissions=["change"])
    def assign_to_driver(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        form = AssignDriverForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._form_page(request, queryset, form, "assign_to_driver", "Assign orders to a driver")
        driver = form.cleaned_data["driver"]
        actor = Actor.staff(request.user)
        self._apply(request, queryset, lambda o: order_usecases.order_assign_manually(order_id=o.pk, driver_id=driver.pk, actor=actor), f"assigned to {driver}")
        return None

    @admin.action(description="Unassign (back to waiting)", permissions=["change"])
    def unassign(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        actor = Actor.staff(request.user)
        self._apply(request, queryset, lambda o: order_usecases.order_unassign(order_id=o.pk, actor=actor), "unassigned")

    @admin.action(description="Cancel with a reason", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._form_page(request, queryset, form, "cancel", "Cancel orders")
        actor = Actor.staff(request.user)
        reason = form.cleaned_data["reason"]
        self._apply(request, queryset, lambda o: order_usecases.order_cancel(order_id=o.pk, actor=actor, reason=reason), "cancelled")
        return None

    @admin.action(description="Withdraw the customer's tracking link", permissions=["change"])
    def revoke_tracking_link(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse | None:
        from tracking.services import tracking_link_revoke

        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._form_page(request, queryset, form, "revoke_tracking_link", "Withdraw tracking links")
        actor, reason, now = Actor.staff(request.user), form.cleaned_data["reason"], timezone.now()
        withdrawn = [order.code for order in queryset if tracking_link_revoke(order_id=order.pk, reason=reason, actor=actor, now=now)]
        if withdrawn:
            self.message_user(request, f"{len(withdrawn)} tracking link(s) withdrawn.", messages.SUCCESS)
        if len(withdrawn) < len(queryset):
            self.message_user(request, f"{len(queryset) - len(withdrawn)} order(s) had no live tracking link.", messages.WARNING)
        return None


admin.site.unregister(TokenProxy)
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class StaffUserAdmin(LookupsCheckedAdmin, UserAdmin):
    """Django's own user admin, whose lists cannot be made to answer 500 or read a password hash.

    Deactivating a driver's account takes them offline in the same transaction (their pending
    offer moves on); the silence sweep does it for a deactivation made anywhere else."""

    def save_model(self, request: HttpRequest, obj: User, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            driver_usecases.driver_deactivated(user_id=obj.pk)


@admin.register(Group)
class StaffGroupAdmin(LookupsCheckedAdmin, GroupAdmin):
    """Django's own group admin, whose lists cannot be made to answer 500 either."""


@admin.register(ApiToken)
class ApiTokenAdmin(LookupsCheckedAdmin, TokenAdmin):
    """DRF's token admin without the key: tokens are listed by user, made and revoked here,
    and a key is never shown (a driver's app gets it from `create_driver`)."""

    list_display = ("user", "created")
