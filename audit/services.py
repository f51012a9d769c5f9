"""Writing the audit trail. Callers hold the transaction of the change they record."""

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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


# Events recorded inside `audit_batched()`, written together when it ends, and how many
# savepoints were open when it began; None outside one.
_batch: ContextVar[tuple[list[AuditEvent], int] | None] = ContextVar("audit_batch", default=None)


@contextmanager
def audit_batched() -> Iterator[None]:
    """Write the events recorded inside the block in one INSERT when it ends, in the order
    they were recorded. For a use case whose change records several events (an accept: the
    order assigned, the offer accepted, its rivals withdrawn), inside its transaction:
    `with transaction.atomic(durable=True), audit_batched(): ...`. An exception, or a
    transaction marked to roll back, writes nothing (it rolls back anyway). Events written
    this way have no id until the end; one recorded inside a savepoint opened in the block is
    written at once, so that rolling the savepoint back takes it too."""
    events: list[AuditEvent] = []
    token = _batch.set((events, len(connection.savepoint_ids)))
    try:
        yield
    finally:
        _batch.reset(token)
    if not connection.needs_rollback:  # a transaction marked to roll back records nothing
        rows_insert(events)


def _write(events: list[AuditEvent]) -> None:
    batch = _batch.get()
    if batch is None or len(connection.savepoint_ids) > batch[1]:
        rows_insert(events)
    else:
        batch[0].extend(events)
    if events:
        _log_after_commit(events)


def audit_record(kind: str, **fields: Any) -> AuditEvent:
    """Append one event. Must run inside the caller's transaction, so both commit or neither.

    Fields: actor, subject_type, subject_id, and optionally order_id, order_code, driver_id,
    zone_id, before, after, data."""
    event = _event(kind, **fields)
    _write([event])
    return event


def audit_record_many(entries: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append several events in one INSERT (each entry: `kind` and the fields of
    `audit_record`), for a change that moves many rows at once, such as the rival offers an
    accept withdraws."""
    events = [_event(**entry) for entry in entries]
    _write(events)
    return events
