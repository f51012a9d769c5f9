"""Writing the audit trail. Callers hold the transaction of the change they record."""

import logging
import uuid
from typing import Any

from django.db import connection
from django_guid import get_guid, set_guid

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.after_commit import after_commit
from dispatch.rows import rows_insert

# Every recorded change is also a log line (JSON, with the correlation id), so the logs of a
# request, socket message or task tell the same story as the trail.
logger = logging.getLogger("audit.events")


def current_correlation_id() -> str:
    """The id of the request, socket message or task at hand.

    Work started outside any of them (a management command, a shell) gets one made here,
    kept for the rest of that context, so all of its events share it.
    """
    guid = get_guid()
    if not guid:
        guid = uuid.uuid4().hex
        set_guid(guid)
    return guid


def _event(
    kind: str,
    *,
    actor: Actor,
    subject_type: str,
    subject_id: Any,
    order_id: int | None = None,
    order_code: str = "",
    driver_id: int | None = None,
    zone_id: int | None = None,
    before: Any = None,
    after: Any = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    if not connection.in_atomic_block:
        raise RuntimeError(f"audit_record({kind!r}) outside a transaction: the change and its record must commit together")
    return AuditEvent(
        kind=kind,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label,
        subject_type=subject_type,
        subject_id=str(subject_id),
        order_id=order_id,
        order_code=order_code,
        driver_id=driver_id,
        zone_id=zone_id,
        before=before,
        after=after,
        data=data or {},
        correlation_id=current_correlation_id(),
    )


def _log_after_commit(events: list[AuditEvent]) -> None:
    # Logged once committed: a rolled-back change leaves no line claiming it happened.
    def log() -> None:
        for event in events:
            extra = {
                "event": event.kind,
                "order_id": event.order_id,
                "order_code": event.order_code,
                "driver_id": event.driver_id,
                "actor": f"{event.actor_kind}:{event.actor_label}",
            }
            logger.info("%s %s:%s", event.kind, event.subject_type, event.subject_id, extra=extra)

    after_commit(log)


def audit_record(kind: str, **fields: Any) -> AuditEvent:
    """Append one event. Must run inside the caller's transaction, so both commit or neither.

    Fields: actor, subject_type, subject_id, and optionally order_id, order_code, driver_id,
    zone_id, before, after, data."""
    event = _event(kind, **fields)
    rows_insert([event])
    _log_after_commit([event])
    return event


def audit_record_many(entries: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append several events in one INSERT (each entry: `kind` and the fields of
    `audit_record`), for a change that moves many rows at once, such as the rival offers an
    accept withdraws."""
    events = [_event(**entry) for entry in entries]
    rows_insert(events)
    if events:
        _log_after_commit(events)
    return events
