"""Bookkeeping of the periodic sweeps (when each last ran, for `/readyz` and `/metrics`), and
changes to their schedules by staff, each audited."""

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_record
from dispatch.after_commit import after_commit
from dispatch.errors import DispatchError, InvalidInput, NotFound
from observability import metrics
from observability.models import SweepRun

logger = logging.getLogger(__name__)


def sweep_run(name: str, sweep: Callable[[], int]) -> int:
    """Run a sweep and record its run; a failing sweep is recorded and raised again."""
    started_at = timezone.now()
    started = time.perf_counter()
    try:
        result = sweep()
    except Exception as exc:
        _record(name, started_at=started_at, finished_at=None, duration_s=None, result=None, error=repr(exc)[:2000])
        raise
    duration_s = time.perf_counter() - started
    metrics.sweep_duration(name, duration_s)
    _record(name, started_at=started_at, finished_at=timezone.now(), duration_s=duration_s, result=result, error="")
    if result:
        logger.info("sweep %s handled %s item(s) in %.3f s", name, result, duration_s, extra={"sweep": name, "items": result})
    return result


def _record(name: str, *, started_at: datetime, finished_at: datetime | None, duration_s: float | None, result: int | None, error: str) -> None:
    changes: dict[str, object] = {"last_started_at": started_at, "last_error": error, "runs": F("runs") + 1}
    if finished_at is not None:
        changes.update(last_finished_at=finished_at, last_duration_s=duration_s, last_result=result)
    if SweepRun.objects.filter(name=name).update(**changes):
        return
    try:
        with transaction.atomic():
            SweepRun.objects.create(
                name=name, last_started_at=started_at, last_finished_at=finished_at, last_duration_s=duration_s, last_result=result, last_error=error, runs=1
            )
    except IntegrityError:  # another process recorded this sweep's first run at the same time
        SweepRun.objects.filter(name=name).update(**changes)


# --- The sweeps' schedules (django-celery-beat), as ops change them in admin -------------------

# Sweeps are named `<verb>_<what>_due` (CONVENTIONS.md); each guarantees something (offers lapse,
# no order waits silently), so its schedule can be paused, resumed or re-timed on the record, but
# never renamed, pointed at another task, given arguments or deleted: that would stop a
# guarantee without anyone seeing it, as a renamed kill-switch did.
SWEEP_TASK_SUFFIX = "_due"
SWEEP_EDITABLE_FIELDS = frozenset({"enabled", "interval", "description"})


class SweepScheduleProtected(DispatchError):
    code = "sweep_schedule_protected"


def is_sweep(task_name: str) -> bool:
    return task_name.endswith(SWEEP_TASK_SUFFIX)


def periodic_task_set_enabled(*, task_id: int, enabled: bool, actor: Actor) -> bool:
    """Pause or resume a periodic task; False when it already was. Beat sees it at its next tick."""
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    with transaction.atomic():
        changes: dict[str, object] = {"enabled": enabled}
        if not enabled:
            changes["last_run_at"] = None  # as django-celery-beat does: resumed, it runs at once
        if not PeriodicTask.objects.filter(pk=task_id, enabled=not enabled).update(**changes):
            return False
        task = PeriodicTask.objects.get(pk=task_id)
        audit_record(
            f"periodic_task.{'enabled' if enabled else 'disabled'}",
            actor=actor,
            subject_type="periodic_task",
            subject_id=task.pk,
            before={"enabled": not enabled},
            after={"enabled": enabled},
            data={"name": task.name, "task": task.task},
        )
        PeriodicTasks.update_changed()  # a queryset update sends no signal: tell beat ourselves
    return True


def periodic_task_run(*, task_id: int, actor: Actor) -> None:
    """Run a periodic task now, once, on the record (sweeps are safe to run twice)."""
    from django_celery_beat.models import PeriodicTask

    from dispatch.celery import app

    task = PeriodicTask.objects.get(pk=task_id)
    app.loader.import_default_modules()
    celery_task = app.tasks.get(task.task)
    if celery_task is None:
        raise NotFound(f"no task {task.task!r} is registered", task=task.task)
    args, kwargs = json.loads(task.args or "[]"), json.loads(task.kwargs or "{}")
    with transaction.atomic():
        audit_record("periodic_task.run_requested", actor=actor, subject_type="periodic_task", subject_id=task.pk, data={"name": task.name, "task": task.task})
        after_commit(lambda: celery_task.apply_async(args=args, kwargs=kwargs, headers={"periodic_task_name": task.name}))


# A sweep runs at least once an hour (or the guarantees it keeps lapse) and at most once a
# second (or it hammers the database for nothing: each run is safe to miss).
SWEEP_INTERVAL_MIN_S, SWEEP_INTERVAL_MAX_S = 1, 3600


def sweep_interval_check(schedule: Any) -> None:
    """Refuse an interval schedule a sweep must not run on (InvalidInput)."""
    seconds = schedule.schedule.run_every.total_seconds() if schedule is not None else None
    if seconds is None or not SWEEP_INTERVAL_MIN_S <= seconds <= SWEEP_INTERVAL_MAX_S:
        raise InvalidInput(
            f"a sweep runs every {SWEEP_INTERVAL_MIN_S} s to {SWEEP_INTERVAL_MAX_S} s: pause it instead of stopping it this way",
            interval_s=seconds,
        )


def periodic_task_save(*, instance: Any, changed_fields: list[str], is_new: bool, actor: Actor) -> None:
    """Save a periodic task edited by staff, audited; a sweep's schedule keeps its name and task,
    and its interval stays within what keeps its guarantee without hammering the database."""
    from django_celery_beat.models import PeriodicTask

    from dispatch.services import reference_data_save

    if is_sweep(instance.task if is_new else PeriodicTask.objects.get(pk=instance.pk).task) and (is_new or "interval" in changed_fields):
        sweep_interval_check(instance.interval)
    if not is_new:
        stored = PeriodicTask.objects.get(pk=instance.pk)
        refused = sorted(set(changed_fields) - SWEEP_EDITABLE_FIELDS)
        if is_sweep(stored.task) and refused:
            raise SweepScheduleProtected(
                f"{stored.name!r} runs the sweep {stored.task}: only {', '.join(sorted(SWEEP_EDITABLE_FIELDS))} may change", fields=refused
            )
    reference_data_save(instance=instance, changed_fields=changed_fields, is_new=is_new, actor=actor)


def periodic_task_delete(*, instance: Any, actor: Actor) -> None:
    from dispatch.services import reference_data_delete

    if is_sweep(instance.task):
        raise SweepScheduleProtected(f"{instance.name!r} runs the sweep {instance.task}: disable it instead, on the record", task=instance.task)
    reference_data_delete(instance=instance, actor=actor)
