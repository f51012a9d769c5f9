"""Reads behind `/readyz`: is the database there, is Redis there, are the sweeps running?"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone


def database_check() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"status": "failing", "error": repr(exc)[:300]}
    return {"status": "ok", "vendor": connection.vendor}


def redis_check() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"status": "ok", "detail": "embedded: in-process channel layer and broker"}
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=settings.READYZ_TIMEOUT_S, socket_connect_timeout=settings.READYZ_TIMEOUT_S)
    try:
        client.ping()
    except Exception as exc:
        return {"status": "failing", "error": repr(exc)[:300]}
    finally:
        client.close()
    return {"status": "ok"}


def sweeps_check(now: datetime | None = None) -> dict[str, Any]:
    """Every enabled interval schedule must have finished a run within `factor` intervals.

    The schedules are the ones in django-celery-beat (editable in admin), so a sweep ops
    disabled on purpose is not reported, and a new sweep is covered without a code change.
    """
    from django_celery_beat.models import PeriodicTask

    from observability.models import SweepRun

    now = now or timezone.now()
    try:
        schedules = list(PeriodicTask.objects.filter(enabled=True, interval__isnull=False).select_related("interval"))
        runs = {run.name: run for run in SweepRun.objects.filter(name__in=[s.task for s in schedules])}
    except Exception as exc:
        return {"status": "failing", "error": repr(exc)[:300]}
    detail: dict[str, Any] = {}
    failing = False
    for schedule in schedules:
        interval = schedule.interval
        assert interval is not None
        every_s = timedelta(**{interval.period: interval.every}).total_seconds()
        allowed_s = every_s * settings.READYZ_SWEEP_INTERVALS + settings.READYZ_SWEEP_GRACE_S
        run = runs.get(schedule.task)
        finished_at = run.last_finished_at if run else None
        lag_s = (now - finished_at).total_seconds() if finished_at else None
        is_late = lag_s is None or lag_s > allowed_s
        failing = failing or is_late
        detail[schedule.task] = {
            "status": "late" if is_late else "ok",
            "every_s": every_s,
            "allowed_lag_s": allowed_s,
            "lag_s": None if lag_s is None else round(lag_s, 3),
            "last_finished_at": finished_at.isoformat() if finished_at else None,
            "last_error": (run.last_error or None) if run else None,
        }
    return {"status": "failing" if failing else "ok", "sweeps": detail}
