"""Writing the audit trail. Callers hold the transaction of the change they record."""

import logging
import uuid
from typing import Any

from django.db import connection, transaction
from django_guid import get_guid, set_guid

from audit.actors import Actor
from audit.models import AuditEvent

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


def audit_record(
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
    """Append one event. Must run inside the caller's transaction, so both commit or neither."""
    if not connection.in_atomic_block:
        raise RuntimeError(f"audit_record({kind!r}) outside a transaction: the change and its record must commit together")
    event = AuditEvent.objects.create(
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
    extra = {"event": kind, "order_id": order_id, "order_code": order_code, "driver_id": driver_id, "actor": f"{actor.kind}:{actor.label}"}
    # Logged once committed: a rolled-back change leaves no line claiming it happened.
    transaction.on_commit(lambda: logger.info("%s %s:%s", kind, subject_type, subject_id, extra=extra))
    return event
