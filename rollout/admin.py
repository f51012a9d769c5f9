"""Kill-switches and rollout shares in the ops console; every flip is audited with the user."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from waffle.models import Flag, Sample, Switch

from audit.actors import Actor
from dispatch.admin import LookupsCheckedAdmin
from dispatch.services import reference_data_save
from rollout import services
from rollout.models import RolloutPolicy
from usecases import switches as switch_usecases

admin.site.unregister(Switch)
# Nothing here decides by a waffle flag or sample: every v2 feature is a switch plus a rollout
# share (rollout.selectors). Left in the console they would be a second, unaudited set of
# toggles that looks like it decides something, or starts to once someone calls flag_is_active.
admin.site.unregister(Flag)
admin.site.unregister(Sample)


@admin.register(Switch)
class SwitchAdmin(LookupsCheckedAdmin):
    list_display = ["name", "active", "note", "modified"]
    list_filter = ["active"]
    search_fields = ["name", "note"]
    ordering = ["name"]
    actions = ["switch_on", "switch_off"]
    fields = ["name", "active", "note", "created", "modified"]
    # A switch is read by its name: renamed, `v2_offers` would read as off everywhere, with no
    # flip on the record and no offer withdrawn. The name never changes once made.
    readonly_fields = ["name", "created", "modified"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # The switches are the v2 features' (made by migrations; switch_set makes a missing one):
        # a switch by any other name would decide nothing.
        return False

    def save_model(self, request: HttpRequest, obj: Switch, form: forms.ModelForm, change: bool) -> None:
        actor = Actor.staff(request.user)
        if "active" in form.changed_data:
            switch_usecases.switch_flip(name=obj.name, active=obj.active, actor=actor)  # the flip, with its withdrawals
        if "note" in form.changed_data:
            reference_data_save(instance=obj, changed_fields=["note"], is_new=False, actor=actor)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a deleted switch reads as off: flip it off instead, on the record

    def _flip(self, request: HttpRequest, queryset: QuerySet[Switch], active: bool) -> None:
        for switch in queryset:
            switch_usecases.switch_set(name=switch.name, active=active, actor=Actor.staff(request.user))
        self.message_user(request, f"{queryset.count()} switch(es) turned {'on' if active else 'off'}.", messages.SUCCESS)

    @admin.action(description="Turn selected switches on", permissions=["change"])
    def switch_on(self, request: HttpRequest, queryset: QuerySet[Switch]) -> None:
        self._flip(request, queryset, True)

    @admin.action(description="Turn selected switches off (v1 behaviour at once)", permissions=["change"])
    def switch_off(self, request: HttpRequest, queryset: QuerySet[Switch]) -> None:
        self._flip(request, queryset, False)


@admin.register(RolloutPolicy)
class RolloutPolicyAdmin(LookupsCheckedAdmin):
    list_display = ["feature", "percentage", "updated_at"]
    fields = ["feature", "percentage"]

    def get_readonly_fields(self, request: HttpRequest, obj: RolloutPolicy | None = None) -> list[str]:
        return ["feature"] if obj else []

    def save_model(self, request: HttpRequest, obj: RolloutPolicy, form: forms.ModelForm, change: bool) -> None:
        saved = services.rollout_set(feature=obj.feature, percentage=obj.percentage, actor=Actor.staff(request.user))
        obj.pk = saved.pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
