"""Sweep runs in the ops console, read-only: when each timer last ran and how it went; and the
sweeps' schedules (django-celery-beat), whose every change and action is checked and audited."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from audit.actors import Actor
from dispatch.admin import LookupsCheckedAdmin, ReadOnlyAdmin, ServiceSavedAdmin
from dispatch.errors import DispatchError
from observability import services
from observability.models import SweepRun


@admin.register(SweepRun)
class SweepRunAdmin(ReadOnlyAdmin):
    list_display = ["name", "last_finished_at", "last_duration_s", "last_result", "runs", "last_error"]


def _sweep_interval_error(form: forms.ModelForm, task: str | None) -> None:
    """The service's bound on a sweep's interval, shown on the form instead of failing the save."""
    if task and services.is_sweep(task):
        try:
            services.sweep_interval_check(form.cleaned_data.get("interval"))
        except DispatchError as exc:
            form.add_error("interval" if "interval" in form.fields else None, exc.message)


class SweepScheduleForm(forms.ModelForm):
    """A sweep's schedule: paused, resumed or re-timed; its name, task and arguments stay."""

    class Meta:
        model = PeriodicTask
        fields = sorted(services.SWEEP_EDITABLE_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        _sweep_interval_error(self, self.instance.task)
        return cleaned


class CheckedPeriodicTaskForm(beat_admin.PeriodicTaskForm):
    """django-celery-beat's form for a new task; one that runs a sweep keeps to a sweep's interval."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        _sweep_interval_error(self, cleaned.get("task"))
        return cleaned


for model in (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    admin.site.unregister(model)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(LookupsCheckedAdmin, beat_admin.PeriodicTaskAdmin):
    """django-celery-beat's admin, with its actions behind the change permission and every
    change (form or action) going through an observability service with its audit event."""

    actions = ["enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks"]
    form = CheckedPeriodicTaskForm

    def get_fieldsets(self, request: HttpRequest, obj: PeriodicTask | None = None) -> Any:
        if obj is not None and services.is_sweep(obj.task):
            return [(None, {"fields": ["name", "task", "enabled", "description"]}), ("Schedule", {"fields": ["interval", "last_run_at"]})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: PeriodicTask | None = None) -> Any:
        if obj is not None and services.is_sweep(obj.task):
            return ["name", "task", "last_run_at"]
        return super().get_readonly_fields(request, obj)

    def get_form(self, request: HttpRequest, obj: PeriodicTask | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is not None and services.is_sweep(obj.task):
            kwargs["form"] = SweepScheduleForm
        return super().get_form(request, obj, change=change, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: PeriodicTask | None = None) -> bool:
        if obj is not None and services.is_sweep(obj.task):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: PeriodicTask, form: forms.ModelForm, change: bool) -> None:
        services.periodic_task_save(instance=obj, changed_fields=list(form.changed_data), is_new=not change, actor=Actor.staff(request.user))

    def delete_model(self, request: HttpRequest, obj: PeriodicTask) -> None:
        services.periodic_task_delete(instance=obj, actor=Actor.staff(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        for task in queryset:
            try:
                services.periodic_task_delete(instance=task, actor=Actor.staff(request.user))
            except DispatchError as exc:
                self.message_user(request, exc.message, messages.ERROR)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[PeriodicTask], enabled: bool | None) -> None:
        """enabled=None toggles each task."""
        actor = Actor.staff(request.user)
        changed = 0
        for task in queryset:
            changed += services.periodic_task_set_enabled(task_id=task.pk, enabled=(not task.enabled) if enabled is None else enabled, actor=actor)
        self.message_user(request, f"{changed} periodic task(s) changed, on the record.", messages.SUCCESS)

    @admin.action(description="Enable selected tasks", permissions=["change"])
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected tasks", permissions=["change"])
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, False)

    @admin.action(description="Toggle activity of selected tasks", permissions=["change"])
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, None)

    @admin.action(description="Run selected tasks now", permissions=["change"])
    def run_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        actor = Actor.staff(request.user)
        for task in queryset:
            try:
                services.periodic_task_run(task_id=task.pk, actor=actor)
            except DispatchError as exc:
                self.message_user(request, f"{task.name}: {exc.message}", messages.ERROR)
        self.message_user(request, "Selected tasks sent to run, on the record.", messages.SUCCESS)


class ScheduleAdmin(ServiceSavedAdmin):
    """A schedule row is shared by every task that uses it: one a sweep uses is not edited in
    place (that re-times every sweep on it at once) and one any task uses is not deleted
    (django-celery-beat deletes the tasks with it). Point a task at a new schedule instead."""

    inlines = [beat_admin.PeriodicTaskInline]

    def _used_by(self, schedule: Any) -> QuerySet[PeriodicTask]:
        return PeriodicTask.objects.filter(**{self.model._meta.model_name.removesuffix("schedule"): schedule})

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and any(services.is_sweep(task) for task in self._used_by(obj).values_list("task", flat=True)):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and self._used_by(obj).exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for schedule in queryset:
            if self._used_by(schedule).exists():
                self.message_user(request, f"{schedule} is in use by periodic tasks: not deleted.", messages.ERROR)
            else:
                self.delete_model(request, schedule)


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(ScheduleAdmin):
    pass


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(ScheduleAdmin):
    list_display = ["__str__", "human_readable"]
    fields = ["human_readable", "minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone"]
    readonly_fields = ["human_readable"]


@admin.register(SolarSchedule)
class SolarScheduleAdmin(ScheduleAdmin):
    pass


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(ScheduleAdmin):
    fields = ["clocked_time"]
    list_display = ["clocked_time"]
