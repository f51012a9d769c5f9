"""Reads of the audit trail for support: search with keyset pagination, an order's story.

Every filter is served by an index that starts with it and goes on with the event time
(see AuditEvent.Meta.indexes), so a search reads the rows it shows, newest first, however
long the log grows. Pages are keyset pages: "after this (time, id)", never OFFSET.
"""

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from audit.models import AuditEvent

PAGE_SIZE = 50
STORY_PAGE_SIZE = 500


class CursorInvalid(ValueError):
    """A page cursor that was not made by us (edited or cut short)."""


def is_plain_id(text: str) -> bool:
    """Whether a search term is an id: ASCII digits that fit a bigint."""
    # str.isdigit() is true for "²" too, which int() refuses: ASCII digits only, and no
    # longer than a bigint (a longer one matches no id anyway).
    return text.isascii() and text.isdigit() and len(text) <= 18


def cursor_encode(event: AuditEvent) -> str:
    return base64.urlsafe_b64encode(f"{event.occurred_at.isoformat()}|{event.pk}".encode()).decode()


def cursor_decode(value: str) -> tuple[datetime, int]:
    try:
        occurred_at, _, event_id = base64.urlsafe_b64decode(value.encode()).decode().partition("|")
        moment = parse_datetime(occurred_at)
        if moment is None or not is_plain_id(event_id):
            raise ValueError
    except (ValueError, UnicodeDecodeError) as exc:
        raise CursorInvalid("The page cursor is not valid; start the search again.") from exc
    return moment, int(event_id)


def audit_events_matching(filters: dict[str, Any]) -> QuerySet[AuditEvent]:
    """Events matching every given filter (order, driver, since, until, kind, actor, zone,
    correlation_id), newest first."""
    events = AuditEvent.objects.all()
    order = filters.get("order")
    if order:
        by_code = Q(order_code=order)
        events = events.filter(by_code | Q(order_id=int(order)) if is_plain_id(order) else by_code)
    if filters.get("driver"):
        events = events.filter(driver_id=filters["driver"])
    if filters.get("since"):
        events = events.filter(occurred_at__gte=filters["since"])
    if filters.get("until"):
        events = events.filter(occurred_at__lt=filters["until"])
    if filters.get("kind"):
        events = events.filter(kind=filters["kind"])
    if filters.get("actor"):
        events = events.filter(actor_label=filters["actor"])
    if filters.get("zone"):
        events = events.filter(zone_id=filters["zone"].pk)
    if filters.get("correlation_id"):
        events = events.filter(correlation_id=filters["correlation_id"])
    return events.order_by("-occurred_at", "-id")


@dataclass(frozen=True)
class Page:
    events: list[AuditEvent]
    next_cursor: str | None


def audit_events_page(events: QuerySet[AuditEvent], after: tuple[datetime, int] | None, size: int = PAGE_SIZE) -> Page:
    """One page of `events` (already newest first) after the cursor's (time, id)."""
    if after is not None:
        occurred_at, event_id = after
        events = events.filter(Q(occurred_at__lt=occurred_at) | Q(occurred_at=occurred_at, id__lt=event_id))
    rows = list(events[: size + 1])
    return Page(rows[:size], cursor_encode(rows[size - 1]) if len(rows) > size else None)


@dataclass(frozen=True)
class StoryStep:
    event: AuditEvent
    since_previous: timedelta | None


@dataclass(frozen=True)
class Story:
    steps: list[StoryStep]
    # Where the next page starts, when the order has more events than one page shows.
    next_cursor: str | None


def order_story(order_id: int, after: tuple[datetime, int] | None = None, size: int = STORY_PAGE_SIZE) -> Story:
    """Every event of the order and of its offers, escalations and notifications, oldest first,
    with the time since the step before; at most `size` of them from the cursor's (time, id) on,
    so an order with 100,000 events is read and drawn a page at a time."""
    events = AuditEvent.objects.filter(order_id=order_id)
    previous_at = None
    if after is not None:
        previous_at, event_id = after
        events = events.filter(Q(occurred_at__gt=previous_at) | Q(occurred_at=previous_at, id__gt=event_id))
    rows = list(events.order_by("occurred_at", "id")[: size + 1])
    steps = []
    for event in rows[:size]:
        steps.append(StoryStep(event, event.occurred_at - previous_at if previous_at else None))
        previous_at = event.occurred_at
    return Story(steps, cursor_encode(rows[size - 1]) if len(rows) > size else None)
