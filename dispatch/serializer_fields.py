"""Strict serializer fields shared by the driver API and the Vendure webhook.

DRF coerces by default (`false` becomes 0.0, `"5"` becomes 5); a dispatch API must not
guess, so these refuse values of the wrong JSON type.
"""

from typing import Any

from django.core.validators import RegexValidator
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
