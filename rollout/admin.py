"""Kill-switches and rollout shares in the ops console; every flip is audited with the user."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from waffle.models import Switch

from audit.actors import Actor
from rollout import services
from rollout.models import RolloutPolicy

admin.site.unregister(Switch)


@admin.register(Switch)
class SwitchAdmin(admin.ModelAdmin):
    list_display = ["name", "active", "note", "modified"]
    list_filter = ["active"]
    search_fields = ["name", "note"]
    ordering = ["name"]
    actions = ["switch_on", "switch_off"]
    readonly_fields = ["created", "modified"]

    def save_model(self, request: HttpRequest, obj: Switch, form: forms.ModelForm, change: bool) -> None:
        # The note and the name are plain edits; the flip itself goes through the service.
        active = obj.active
        if change:
            obj.active = Switch.objects.get(pk=obj.pk).active
        else:
            obj.active = False
        obj.save()
        if active != obj.active:
            services.switch_set(name=obj.name, active=active, actor=Actor.staff(request.user))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a deleted switch reads as off: flip it off instead, on the record

    def _flip(self, request: HttpRequest, queryset: QuerySet[Switch], active: bool) -> None:
        for switch in queryset:
            services.switch_set(name=switch.name, active=active, actor=Actor.staff(request.user))
        self.message_user(request, f"{queryset.count()} switch(es) turned {'on' if active else 'off'}.", messages.SUCCESS)

    @admin.action(description="Turn selected switches on", permissions=["change"])
    def switch_on(self, request: HttpRequest, queryset: QuerySet[Switch]) -> None:
        self._flip(request, queryset, True)

    @admin.action(description="Turn selected switches off (v1 behaviour at once)", permissions=["change"])
    def switch_off(self, request: HttpRequest, queryset: QuerySet[Switch]) -> None:
        self._flip(request, queryset, False)


@admin.register(RolloutPolicy)
class RolloutPolicyAdmin(admin.ModelAdmin):
    list_display = ["feature", "percentage", "updated_at"]
    fields = ["feature", "percentage"]

    def get_readonly_fields(self, request: HttpRequest, obj: RolloutPolicy | None = None) -> list[str]:
        return ["feature"] if obj else []

    def save_model(self, request: HttpRequest, obj: RolloutPolicy, form: forms.ModelForm, change: bool) -> None:
        saved = services.rollout_set(feature=obj.feature, percentage=obj.percentage, actor=Actor.staff(request.user))
        obj.pk = saved.pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
