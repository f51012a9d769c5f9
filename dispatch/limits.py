"""The bounds of what dispatch accepts and stores, each defined once.

Models, serializers (webhook, REST), admin forms, services and management commands all take
their bounds from here, so one field is never allowed a value through one door that another
door refuses. Each bound is the smaller of what the database column holds and what the
business can sensibly mean.
"""

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError

# Money in minor units. A bigint holds 9.2e18; 10**12 minor units (ten billion in a
# two-decimal currency) is far above any delivery order and still exact as a JSON number
# in every client (< 2**53).
MONEY_MINOR_MAX = 10**12

# An order's lines, as the shop sends them.
ORDER_LINES_MAX = 500
LINE_QUANTITY_MAX = 100_000

# Moments the outside world gives us (order placed, event created, delivery promised).
# Before this nothing we handle happened; more than this ahead of now is a mistake.
EARLIEST_MOMENT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_AHEAD = timedelta(days=366)

# A driver: the admin form, the model, the service and `manage.py create_driver` share these.
DRIVER_CAPACITY_MIN = 1
DRIVER_CAPACITY_MAX = 50
DRIVER_NAME_MAX_LENGTH = 150
DRIVER_PHONE_MAX_LENGTH = 32

# A zone's area. Every order without a cached geometry pays for the polygon's size, and the
# admin page draws it: a city district needs hundreds of vertices, not hundreds of thousands.
ZONE_AREA_MAX_VERTICES = 5_000
ZONE_AREA_MAX_POLYGONS = 100
ZONE_POSTAL_PREFIXES_MAX = 1_000
POSTAL_PREFIX_MAX_LENGTH = 16

# Durations staff set on zones and escalation policies: longer than a week means "never",
# which is not a limit ops can mean for a delivery.
DURATION_S_MAX = 7 * 24 * 3600
# Counts staff set (orders waiting before a zone turns amber, misses before escalating).
COUNT_MAX = 10_000


def storable_text_problem(value: str) -> str | None:
    """Why PostgreSQL would refuse this text, or None: NUL, or a lone surrogate (not UTF-8)."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain lone surrogate characters"
    return None


def validate_storable_text(value: Any) -> None:
    """A model and form validator: the text can be stored in a PostgreSQL text column."""
    if isinstance(value, str):
        problem = storable_text_problem(value)
        if problem:
            raise ValidationError(f"The text {problem}.")


def json_problem(value: Any, *, max_depth: int, max_items: int) -> str | None:
    """Why this JSON value cannot be stored in a jsonb column within the bounds, or None.

    PostgreSQL's jsonb refuses NUL and lone surrogates (in keys too) and has no NaN or
    Infinity, which Python's json module happily reads and writes. `max_items` bounds the
    number of values and keys together, `max_depth` the nesting.
    """
    count = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > max_items:
            return f"has more than {max_items} values"
        if depth > max_depth:
            return f"is nested deeper than {max_depth} levels"
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return "has a key that is not a string"
                problem = storable_text_problem(key)
                if problem:
                    return f"has a key that {problem}"
                count += 1
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            problem = storable_text_problem(item)
            if problem:
                return f"has a string that {problem}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "has a number that is not finite (NaN or Infinity)"
        elif not (item is None or isinstance(item, (bool, int))):
            return f"has a value of type {type(item).__name__}, which is not JSON"
    return None


def moment_problem(value: datetime, *, now: datetime) -> str | None:
    """Why this moment from outside is not one we accept, or None."""
    if value.tzinfo is None or value.utcoffset() is None:
        return "must carry a time zone (e.g. Z or +01:00)"
    if value < EARLIEST_MOMENT:
        return f"must not be before {EARLIEST_MOMENT:%Y-%m-%d}"
    if value > now + LATEST_AHEAD:
        return f"must not be more than {LATEST_AHEAD.days} days ahead"
    return None
