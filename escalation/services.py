"""Escalations, their notifications, and automatic reassignment.

An escalation is opened once per order, trigger and episode (a unique constraint, so two
sweeps or two beats never open it twice), raised level by level while nobody acknowledges
it, and resolved by ops or by itself when its order moves on. Every step is a compare-and-set
with its audit event in the same transaction; notifications are rows sent after commit and
resent by a sweep, so a broker or notifier outage delays them and never loses or blocks them.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from audit.actors import SYSTEM, Actor
from audit.services import audit_record
from dispatch import services as dispatch_services
from dispatch.after_commit import after_commit
from dispatch.clock import database_now
from dispatch.errors import IllegalTransition, InvalidInput, NotFound
from dispatch.locks import order_lock
from dispatch.rows import row_ids
from escalation import selectors
from escalation.models import AlertKind, AlertRoute, Escalation, EscalationLevel, Notification, NotificationChannel
from escalation.notifiers import NOTIFIERS, AlertMessage, NotifierFailed
from observability import metrics

logger = logging.getLogger(__name__)
E = Escalation.State


def _escalation_audit(escalation: Escalation, kind: str, *, actor: Actor, order_code: str, before: Any, after: Any, **data: Any) -> None:
    audit_record(
        kind,
        actor=actor,
        subject_type="escalation",
        subject_id=escalation.pk,
        order_id=escalation.order_id,
        order_code=order_code,
        zone_id=escalation.zone_id,
        before=before,
        after=after,
        data={"trigger": escalation.trigger, **data},
    )


# --- Opening, raising, acknowledging, resolving -------------------------------------------


def escalation_open(*, due: selectors.Due, now: datetime, policies: selectors.Policies | None = None) -> Escalation | None:
    """Open the escalation of a fired trigger and tell level 1; None when it exists already
    or when the order moved on meanwhile."""
    policies = policies or selectors.Policies()
    levels = policies.levels(due.zone_id)
    with transaction.atomic():
        # Under the order's lock, so the order cannot move on between our check and our insert.
        order = order_lock(due.order_id)
        if order is None or order.status not in selectors.APPLIES_IN[due.trigger]:
            return None
        if order.limits_extended_until is not None and order.limits_extended_until > now:
            return None
        try:
            with transaction.atomic():
                escalation = Escalation.objects.create(
                    order_id=due.order_id,
                    zone_id=due.zone_id,
                    trigger=due.trigger,
                    episode_started_at=due.episode_started_at,
                    state=E.OPEN,
                    level=1,
                    opened_at=now,
                    next_level_at=selectors.next_level_at(levels, 1, now),
                    detail=due.detail,
                )
        except IntegrityError:
            return None  # opened by another sweep for this episode
        _escalation_audit(
            escalation, "escalation.opened", actor=SYSTEM, order_code=due.order_code, before=None, after={"state": E.OPEN, "level": 1}, **due.detail
        )
        _notify_level(escalation, levels, level=1, event=Notification.Event.OPENED, now=now)
        metrics.escalation_opened(due.zone_id, due.trigger)
    return escalation


def escalation_raise(*, escalation_id: int, now: datetime, policies: selectors.Policies | None = None) -> bool:
    """Tell the next level of an escalation nobody acknowledged in time (at the top level, the
    top level again, once, after an extension ran out)."""
    policies = policies or selectors.Policies()
    with transaction.atomic():
        escalation = (
            Escalation.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("order")
            .filter(pk=escalation_id, state=E.OPEN, next_level_at__lte=now)
            .first()
        )
        if escalation is None:
            return False  # acknowledged, resolved, raised by another sweep, or being handled now
        levels = policies.levels(escalation.zone_id)
        higher = [level.level for level in levels if level.level > escalation.level]
        new_level = min(higher) if higher else escalation.level
        next_at = selectors.next_level_at(levels, new_level, escalation.opened_at)
        Escalation.objects.filter(pk=escalation.pk, state=E.OPEN, level=escalation.level).update(level=new_level, next_level_at=next_at)
        before_level = escalation.level
        escalation.level = new_level
        _escalation_audit(
            escalation,
            "escalation.raised",
            actor=SYSTEM,
            order_code=escalation.order.code,
            before={"level": before_level},
            after={"level": new_level},
            next_level_at=next_at.isoformat() if next_at else None,
        )
        _notify_level(escalation, levels, level=new_level, event=Notification.Event.RAISED, now=now)
        metrics.escalation_raised(escalation.zone_id, new_level)
    return True


def _escalation_move(escalation_id: int, from_states: tuple[str, ...], to: str, **changes: Any) -> tuple[Escalation, str]:
    """Compare-and-set of an escalation's state (the climb stops with it); returns it and the state it left."""
    current = Escalation.objects.filter(pk=escalation_id).values_list("state", flat=True).first()
    if current is None:
        raise NotFound(f"escalation {escalation_id} not found")
    if not Escalation.objects.filter(pk=escalation_id, state__in=from_states).update(state=to, next_level_at=None, **changes):
        raise IllegalTransition(f"escalation {escalation_id}", current, to)
    return Escalation.objects.select_related("order").get(pk=escalation_id), current


def escalation_acknowledge(*, escalation_id: int, actor: Actor, now: datetime | None = None) -> Escalation:
    """Someone owns it now: the climb stops. It stays unresolved until the order moves on."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        escalation, _ = _escalation_move(escalation_id, (E.OPEN,), E.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=actor.label)
        _escalation_audit(
            escalation,
            "escalation.acknowledged",
            actor=actor,
            order_code=escalation.order.code,
            before={"state": E.OPEN},
            after={"state": E.ACKNOWLEDGED},
        )
    return escalation


def escalation_resolve(*, escalation_id: int, actor: Actor, resolution: str, now: datetime | None = None) -> Escalation:
    """Close an escalation (ops, or the sweep of escalations that resolved themselves); the
    channels that were told about it hear it is over."""
    with transaction.atomic(durable=True):
        return _escalation_resolve_locked(escalation_id=escalation_id, actor=actor, resolution=resolution, now=now or timezone.now())


def _escalation_resolve_locked(*, escalation_id: int, actor: Actor, resolution: str, now: datetime) -> Escalation:
    resolution = resolution.strip()[:255]
    if not resolution:
        raise InvalidInput("say how the escalation was resolved")
    escalation, current = _escalation_move(
        escalation_id, Escalation.UNRESOLVED_STATES, E.RESOLVED, resolved_at=now, resolved_by=actor.label, resolution=resolution
    )
    _escalation_audit(
        escalation,
        "escalation.resolved",
        actor=actor,
        order_code=escalation.order.code,
        before={"state": current},
        after={"state": E.RESOLVED},
        resolution=resolution,
    )
    _notify_resolution(escalation, now)
    return escalation


def escalation_extend(*, escalation_id: int, minutes: int, actor: Actor, now: datetime | None = None) -> Escalation:
    """Give the order more time: no reassignment or new escalation of it until then, and this
    escalation climbs on from then if the order is still stuck."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        escalation = Escalation.objects.filter(pk=escalation_id).first()
        if escalation is None:
            raise NotFound(f"escalation {escalation_id} not found")
        if escalation.state == E.RESOLVED:
            raise IllegalTransition(f"escalation {escalation_id}", escalation.state, "extended")
        order = dispatch_services.order_limits_extend(order_id=escalation.order_id, minutes=minutes, actor=actor, now=now)
        Escalation.objects.filter(pk=escalation_id, state__in=Escalation.UNRESOLVED_STATES).update(state=E.OPEN, next_level_at=order.limits_extended_until)
        escalation.refresh_from_db()
        _escalation_audit(
            escalation,
            "escalation.extended",
            actor=actor,
            order_code=order.code,
            before=None,
            after={"state": escalation.state, "next_level_at": escalation.next_level_at.isoformat() if escalation.next_level_at else None},
            minutes=minutes,
        )
    return escalation


def escalations_resolve_for_order(*, order_id: int, status: str, now: datetime) -> int:
    """The order moved on (inside its transaction): escalations about its old status resolve."""
    moot = [trigger for trigger, statuses in selectors.APPLIES_IN.items() if status not in statuses]
    resolved = 0
    for escalation_id in row_ids(Escalation, order_id=order_id, state=Escalation.UNRESOLVED_STATES, trigger=moot):
        _escalation_resolve_locked(escalation_id=escalation_id, actor=SYSTEM, resolution=f"order moved on: {status}", now=now)
        resolved += 1
    return resolved


def escalations_resolve_moot(*, now: datetime, limit: int = 500) -> int:
    """Sweep: resolve escalations whose condition no longer holds (a silent driver was heard
    again; an order change whose in-transaction resolution was missed)."""
    resolved = 0
    unresolved = Escalation.objects.filter(state__in=Escalation.UNRESOLVED_STATES).select_related("order", "order__driver").order_by("pk")[:limit]
    for escalation in unresolved:
        if selectors.escalation_still_applies(escalation):
            continue
        reason = "driver heard again" if escalation.trigger == AlertKind.DRIVER_SILENT else f"order moved on: {escalation.order.status}"
        try:
            escalation_resolve(escalation_id=escalation.pk, actor=SYSTEM, resolution=reason, now=now)
            resolved += 1
        except IllegalTransition:
            continue
    return resolved


# --- The sweeps -------------------------------------------------------------------------


def open_escalations_due(*, now: datetime | None = None) -> int:
    """Open an escalation for every order whose trigger fired. Safe to run twice at once."""
    now = now or database_now()
    policies = selectors.Policies()
    opened = 0
    for due in selectors.escalations_due(now, policies):
        if escalation_open(due=due, now=now, policies=policies) is not None:
            opened += 1
    return opened


def raise_escalations_due(*, now: datetime | None = None, limit: int = 500) -> int:
    now = now or database_now()
    policies = selectors.Policies()
    due = Escalation.objects.filter(state=E.OPEN, next_level_at__lte=now).order_by("next_level_at").values_list("pk", flat=True)[:limit]
    return sum(escalation_raise(escalation_id=escalation_id, now=now, policies=policies) for escalation_id in list(due))


# --- Notifications ------------------------------------------------------------------------


def _notify_level(escalation: Escalation, levels: list[EscalationLevel], *, level: int, event: str, now: datetime) -> None:
    team = selectors.level_team(levels, level, escalation.trigger)
    for channel in selectors.team_channels(team):
        _notification_make(escalation, channel, team_id=team.pk if team else None, event=event, level=level, now=now)


def _notify_resolution(escalation: Escalation, now: datetime) -> None:
    told = Notification.objects.filter(escalation=escalation).exclude(event=Notification.Event.RESOLVED).values_list("channel_id", "team_id").distinct()
    channels = {c.pk: c for c in NotificationChannel.objects.filter(pk__in=[channel_id for channel_id, _ in told if channel_id])}
    for channel_id, team_id in set(told):
        _notification_make(escalation, channels.get(channel_id), team_id=team_id, event=Notification.Event.RESOLVED, level=escalation.level, now=now)


def _notification_make(escalation: Escalation, channel: NotificationChannel | None, *, team_id: int | None, event: str, level: int, now: datetime) -> None:
    notification = Notification.objects.create(
        escalation=escalation,
        channel=channel,
        channel_kind=channel.kind if channel else NotificationChannel.Kind.LOG,
        team_id=team_id,
        event=event,
        level=level,
        created_at=now,
        next_attempt_at=now,
    )
    # After commit, and robust: with the broker down the notification waits for the sweep.
    after_commit(lambda: _enqueue_send(notification.pk))


def _enqueue_send(notification_id: int) -> None:
    from escalation.tasks import send_notification

    send_notification.delay(notification_id)


def _backoff_s(attempts: int) -> float:
    return float(min(settings.ESCALATION_NOTIFY_BACKOFF_S * 2 ** (attempts - 1), settings.ESCALATION_NOTIFY_BACKOFF_MAX_S))


def notification_send(*, notification_id: int, now: datetime | None = None) -> bool:
    """Send one notification if it is due, outside any transaction; record the outcome.

    The claim (attempts + 1, next attempt pushed past the send's timeout) is a compare-and-
    set, so the task and the sweep never send the same attempt twice.
    """
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.ESCALATION_NOTIFIER_TIMEOUT_S * 2 + 5)
    claimed = Notification.objects.filter(pk=notification_id, state=Notification.State.PENDING, next_attempt_at__lte=now).update(
        attempts=F("attempts") + 1, next_attempt_at=lease
    )
    if not claimed:
        return False
    notification = Notification.objects.select_related("escalation", "escalation__order", "escalation__zone", "channel").get(pk=notification_id)
    try:
        NOTIFIERS[notification.channel_kind].send(notification.channel, _message(notification))
    except NotifierFailed as exc:
        _notification_failed(notification, str(exc)[:500])
        return False
    except Exception as exc:  # a notifier's own bug: recorded by its kind, never its text (it may quote a secret)
        logger.error("notifier %s raised %s", notification.channel_kind, exc.__class__.__name__)
        _notification_failed(notification, f"notifier error: {exc.__class__.__name__}")
        return False
    with transaction.atomic():
        Notification.objects.filter(pk=notification_id).update(state=Notification.State.SENT, sent_at=timezone.now(), next_attempt_at=None, last_error="")
        _notification_audit(notification, "notification.sent", after={"state": Notification.State.SENT}, attempt=notification.attempts)
    metrics.notification_outcome(notification.channel_kind, "sent")
    return True


def _notification_failed(notification: Notification, error: str) -> None:
    gives_up = notification.attempts >= settings.ESCALATION_NOTIFY_MAX_ATTEMPTS
    with transaction.atomic():
        if gives_up:
            Notification.objects.filter(pk=notification.pk).update(state=Notification.State.FAILED, next_attempt_at=None, last_error=error)
        else:
            retry_at = timezone.now() + timedelta(seconds=_backoff_s(notification.attempts))
            Notification.objects.filter(pk=notification.pk).update(next_attempt_at=retry_at, last_error=error)
        _notification_audit(
            notification,
            "notification.failed",
            after={"state": Notification.State.FAILED if gives_up else Notification.State.PENDING},
            attempt=notification.attempts,
            error=error,
            will_retry=not gives_up,
        )
    metrics.notification_outcome(notification.channel_kind, "gave_up" if gives_up else "failed")
    logger.warning("notification %s via %s failed (attempt %s): %s", notification.pk, notification.channel_kind, notification.attempts, error)


def _notification_audit(notification: Notification, kind: str, *, after: Any, **data: Any) -> None:
    escalation = notification.escalation
    audit_record(
        kind,
        actor=SYSTEM,
        subject_type="notification",
        subject_id=notification.pk,
        order_id=escalation.order_id,
        order_code=escalation.order.code,
        zone_id=escalation.zone_id,
        before={"state": Notification.State.PENDING},
        after=after,
        data={"escalation": escalation.pk, "event": notification.event, "channel": notification.channel_kind, "level": notification.level, **data},
    )


def _message(notification: Notification) -> AlertMessage:
    escalation = notification.escalation
    route = AlertRoute.objects.filter(alert=escalation.trigger).values_list("runbook", flat=True).first() or "docs/runbooks/README.md"
    base = settings.DISPATCH_PUBLIC_URL.rstrip("/")
    order = escalation.order
    summary = f"Order {order.code} is {order.get_status_display().lower()}: {escalation.get_trigger_display().lower()}."
    if notification.event == Notification.Event.RESOLVED:
        summary = f"Resolved: {escalation.resolution or 'closed'}."
    return AlertMessage(
        escalation_id=escalation.pk,
        event=notification.event,
        trigger=escalation.trigger,
        trigger_label=escalation.get_trigger_display(),
        level=notification.level,
        order_id=order.pk,
        order_code=order.code,
        zone=escalation.zone.slug if escalation.zone else "no zone",
        summary=summary,
        admin_url=base + reverse("admin:escalation_escalation_change", args=[escalation.pk]),
        runbook=f"{settings.DISPATCH_RUNBOOK_BASE_URL.rstrip('/')}/{route.removeprefix('docs/runbooks/')}" if settings.DISPATCH_RUNBOOK_BASE_URL else route,
    )


def send_notifications_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Sweep: (re)send every pending notification whose attempt is due. By this process's clock:
    the attempt times it compares are written by it (`_notification_failed`'s backoff)."""
    now = now or timezone.now()
    due = list(
        Notification.objects.filter(state=Notification.State.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )
    return sum(notification_send(notification_id=notification_id, now=now) for notification_id in due)
