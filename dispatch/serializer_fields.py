"""Strict serializer fields shared by the driver API and the Vendure webhook.

DRF coerces by default (`false` becomes 0.0, `"5"` becomes 5); a dispatch API must not
guess, so these refuse values of the wrong JSON type.
"""

from datetime import datetime
from typing import Any

from django.core.validators import RegexValidator
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

# PostgreSQL cannot store NUL in text, and DRF refuses it: say so in the schema too.
NO_NUL_CHARACTERS = RegexValidator(r"^[^\x00]*$", "Must not contain NUL characters.")


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "Must be a string."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(NO_NUL_CHARACTERS)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time with a zone, as a JSON string, on a calendar day that exists.

    A time without a zone would be read in the server's zone and silently shift the instant.
    """

    default_error_messages = {
        "invalid": "Must be an ISO 8601 time with a zone, e.g. 2026-11-25T10:15:02Z.",
        "naive": "The time needs a zone (Z or an offset such as +01:00).",
    }
    MAX_LENGTH = 64

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str) or len(value) > self.MAX_LENGTH:
            self.fail("invalid")
        try:
            parsed = parse_datetime(value)  # raises ValueError for 30 February, month 13, +25:00, 24:60
        except ValueError:
            parsed = None
        if parsed is None:
            self.fail("invalid")
        if parsed.tzinfo is None:
            self.fail("naive")
        return super().to_internal_value(value)  # type: ignore[no-any-return]
