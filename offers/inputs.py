"""What a driver's app may send to v2, over the socket or the REST API: one serializer per message.

The socket consumer and `offers.api` validate the same message with the same class, so a
field is checked once, in one place, to what the database can hold (types, lengths, ranges,
finite numbers, dates that exist, no NUL or lone surrogate).
"""

from typing import Any

from django.conf import settings
from rest_framework import serializers

from dispatch.serializer_fields import StrictCharField, StrictDateTimeField, StrictFloatField, StrictIntegerField

# An offer id a socket or REST answer may name; anything larger is refused before a query.
# Narrower than the offers' 64-bit keys: it must be widened before two billion offers.
MAX_ID = 2**31 - 1


class AppVersionSerializer(serializers.Serializer):
    """The app's version: the auth frame's field, and the `X-App-Version` header of the upgrade."""

    app_version = StrictCharField(required=False, allow_blank=True, max_length=32, default="")


class AuthSerializer(AppVersionSerializer):
    token = StrictCharField(max_length=64)


class OfferAnswerSerializer(serializers.Serializer):
    offer_id = StrictIntegerField(min_value=1, max_value=MAX_ID)


class DeclineSerializer(serializers.Serializer):
    reason = StrictCharField(required=False, allow_blank=True, max_length=255, default="")


class DeclineFrameSerializer(OfferAnswerSerializer, DeclineSerializer):
    """A decline on the socket names its offer in the frame; over REST it is in the URL."""


class BreakMinutesField(StrictIntegerField):
    """1 to DISPATCH_MAX_BREAK_MIN minutes, read at each validation so the setting can change."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=1, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        value = super().to_internal_value(data)
        if value > settings.DISPATCH_MAX_BREAK_MIN:
            raise serializers.ValidationError(f"A break lasts at most {settings.DISPATCH_MAX_BREAK_MIN} minutes.")
        return value


class AvailabilitySerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["available", "break", "end_break", "offline"])
    minutes = BreakMinutesField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["state"] == "break" and "minutes" not in attrs:
            raise serializers.ValidationError({"minutes": ["A break needs its length in minutes."]})
        return attrs


class LocationSerializer(serializers.Serializer):
    lat = StrictFloatField(min_value=-90, max_value=90)
    lon = StrictFloatField(min_value=-180, max_value=180)
    recorded_at = StrictDateTimeField(required=False, help_text="When the phone took the fix, ISO 8601 with a zone; defaults to now")
    accuracy_m = StrictFloatField(required=False, allow_null=True, help_text="The fix's accuracy radius in metres, as the phone reports it")
