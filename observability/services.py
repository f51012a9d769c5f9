"""Bookkeeping of the periodic sweeps: when each last ran, for `/readyz` and `/metrics`."""

import logging
import time
from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

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
