"""Reads behind `/readyz` (is the database there, is Redis, are the sweeps running?) and the
zone health dashboard (how is each zone doing right now?)."""

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

# /readyz answers anyone who can reach it: a failure is named by its kind (the exception's
# class), never by its text, which can hold host names, user names or values. The full text
# is on the sweep's record in admin and in the worker's log.


def _error_kind(recorded: str) -> str | None:
    """The exception class of an error recorded as repr(exc), e.g. "OperationalError"."""
    if not recorded:
        return None
    return recorded.split("(", 1)[0].strip()[:100]


def database_check() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"status": "failing", "error": exc.__class__.__name__}
    return {"status": "ok", "vendor": connection.vendor}


def redis_check() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"status": "ok", "detail": "embedded: in-process channel layer and broker"}
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=settings.READYZ_TIMEOUT_S, socket_connect_timeout=settings.READYZ_TIMEOUT_S)
    try:
        client.ping()
    except Exception as exc:
        return {"status": "failing", "error": exc.__class__.__name__}
    finally:
        client.close()
    return {"status": "ok"}


def sweeps_check(now: datetime | None = None) -> dict[str, Any]:
    """Every enabled interval schedule must have finished a run within `factor` intervals (one
    that never ran: within that long of being scheduled).

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
        return {"status": "failing", "error": exc.__class__.__name__}
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
        # A sweep that has not run yet is late once it has been scheduled for longer than its
        # allowed lag (an hourly sweep is not late the minute after a deploy created it).
        waited_s = (now - schedule.date_changed).total_seconds() if schedule.date_changed else None
        is_late = lag_s > allowed_s if lag_s is not None else waited_s is None or waited_s > allowed_s
        failing = failing or is_late
        detail[schedule.task] = {
            "status": "late" if is_late else "ok",
            "every_s": every_s,
            "allowed_lag_s": allowed_s,
            "lag_s": None if lag_s is None else round(lag_s, 3),
            "last_finished_at": finished_at.isoformat() if finished_at else None,
            "last_error": _error_kind(run.last_error) if run else None,
        }
    return {"status": "failing" if failing else "ok", "sweeps": detail}


# --- Zone health (the ops dashboard) ---------------------------------------------------------


@dataclass(frozen=True)
class ZoneHealth:
    """One zone right now: drivers, waiting orders, open escalations, the last hour, a colour."""

    zone: Any
    available: int
    busy: int
    on_break: int
    offline: int
    waiting: int
    oldest_wait_s: float | None
    escalations_by_level: dict[int, int]
    acceptance_ratio: float | None
    median_assign_s: float | None
    colour: str
    reasons: list[str]


def zone_health(now: datetime | None = None) -> list[ZoneHealth]:
    """Every active zone's health, in four grouped queries whatever the number of zones (and,
    every few seconds, two more for the last hour)."""
    from django.db.models import Count, Min

    from dispatch.models import Driver, Order, Zone
    from escalation.models import Escalation

    now = now or timezone.now()
    zones = list(Zone.objects.filter(is_active=True).order_by("name"))
    drivers: dict[int, dict[str, int]] = {}
    full = ~Driver.free_capacity_q()
    for row in Driver.objects.filter(zones__in=zones).values("zones", "availability").annotate(n=Count("id"), full=Count("id", filter=full)):
        counts = drivers.setdefault(row["zones"], {})
        if row["availability"] == Driver.Availability.AVAILABLE:
            counts["busy"] = row["full"]
            counts["available"] = row["n"] - row["full"]
        else:
            counts[row["availability"]] = row["n"]
    waiting_orders = Order.objects.filter(status__in=Order.WAITING_STATUSES, zone__in=zones)
    waiting = {row["zone_id"]: row for row in waiting_orders.values("zone_id").annotate(n=Count("id"), oldest=Min("status_changed_at"))}
    escalations: dict[int, dict[int, int]] = {}
    unresolved = Escalation.objects.filter(state__in=Escalation.UNRESOLVED_STATES, zone__in=zones)
    for level_row in unresolved.values("zone_id", "level").annotate(n=Count("id")):
        escalations.setdefault(level_row["zone_id"], {})[level_row["level"]] = level_row["n"]
    answers, assign_times = _last_hour(now)
    health = []
    for zone in zones:
        counts = drivers.get(zone.pk, {})
        wait = waiting.get(zone.pk)
        oldest_wait_s = (now - wait["oldest"]).total_seconds() if wait else None
        answered = answers.get(zone.pk, {})
        total_answered = sum(answered.values())
        by_level = dict(sorted(escalations.get(zone.pk, {}).items()))
        colour, reasons = _zone_colour(zone, wait["n"] if wait else 0, oldest_wait_s, by_level)
        health.append(
            ZoneHealth(
                zone=zone,
                available=counts.get("available", 0),
                busy=counts.get("busy", 0),
                on_break=counts.get(Driver.Availability.ON_BREAK, 0),
                offline=counts.get(Driver.Availability.OFFLINE, 0),
                waiting=wait["n"] if wait else 0,
                oldest_wait_s=oldest_wait_s,
                escalations_by_level=by_level,
                acceptance_ratio=answered.get("accepted", 0) / total_answered if total_answered else None,
                median_assign_s=statistics.median(assign_times[zone.pk]) if zone.pk in assign_times else None,
                colour=colour,
                reasons=reasons,
            )
        )
    return health


def _last_hour(now: datetime) -> tuple[dict[int | None, dict[str, int]], dict[int, list[float]]]:
    """Offer answers and times to assign over the last hour, by zone, shared by every open
    dashboard for a few seconds: an hour's figures barely move in that time, and reading them
    is most of what a poll would cost on a busy day (bench/zone_health_poll.py)."""
    from django.conf import settings
    from django.core.cache import cache

    from dispatch.models import Order
    from offers.selectors import offer_answers_since

    cached = cache.get(LAST_HOUR_CACHE_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    hour_ago = now - timedelta(hours=1)
    assign_times: dict[int, list[float]] = {}
    for zone_id, received_at, assigned_at in Order.objects.filter(assigned_at__gte=hour_ago).values_list("zone_id", "received_at", "assigned_at"):
        if assigned_at is not None and zone_id is not None:
            assign_times.setdefault(zone_id, []).append((assigned_at - received_at).total_seconds())
    figures = (offer_answers_since(hour_ago), assign_times)
    cache.set(LAST_HOUR_CACHE_KEY, figures, settings.ZONE_HEALTH_LAST_HOUR_TTL_S)
    return figures


LAST_HOUR_CACHE_KEY = "zone-health:last-hour"


def _zone_colour(zone: Any, waiting: int, oldest_wait_s: float | None, escalations_by_level: dict[int, int]) -> tuple[str, list[str]]:
    """Red or amber by the zone's own thresholds, and any open escalation; green otherwise."""
    oldest = oldest_wait_s or 0
    red, amber = [], []
    waiting_text = f"{waiting} order{'s' if waiting != 1 else ''} waiting"
    if waiting >= zone.health_red_waiting:
        red.append(waiting_text)
    elif waiting >= zone.health_amber_waiting:
        amber.append(waiting_text)
    if oldest >= zone.health_red_wait_s:
        red.append(f"an order waiting {int(oldest // 60)} min")
    elif oldest >= zone.health_amber_wait_s:
        amber.append(f"an order waiting {int(oldest // 60)} min")
    if any(level >= 2 for level in escalations_by_level):
        red.append("escalation past level 1")
    elif escalations_by_level:
        amber.append("open escalation")
    if red:
        return "red", red + amber
    return ("amber", amber) if amber else ("green", [])
