"""Strict serializer fields shared by the driver API and the Vendure webhook.

DRF coerces by default (`false` becomes 0.0, `"5"` becomes 5); a dispatch API must not
guess, so these refuse values of the wrong JSON type.
"""

from datetime import datetime
from typing import Any

from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from dispatch.limits import moment_problem

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
    """An ISO 8601 moment given as a string, with its time zone, that exists and is in range.

    DRF's field takes a naive time as local time and a `datetime` object as is; a moment from
    outside must say its zone, and 30 February, month 13 or +25:00 are refused, never raised.
    """

    default_error_messages = {"invalid": "Must be an ISO 8601 date and time with a time zone, e.g. 2026-05-01T10:00:00Z."}

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str) or len(value) > 64:
            self.fail("invalid")
        try:
            parsed = parse_datetime(value)
        except (ValueError, OverflowError):
            parsed = None
        if parsed is None:
            self.fail("invalid")
        problem = moment_problem(parsed, now=timezone.now())  # type: ignore[arg-type]
        if problem:
            raise serializers.ValidationError(f"The moment {problem}.")
        return super().to_internal_value(parsed)
