"""Driver API v1: the driver's own availability and position."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from dispatch.api import DriverAPIView, errors
from dispatch.models import Driver
from dispatch.serializer_fields import StrictFloatField
from dispatch.services import driver_actor
from usecases import drivers as driver_usecases


class V1AvailabilityField(serializers.ChoiceField):
    """v1 knows only offline and available. A break (v2) takes no orders, so v1 sees offline."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=[("offline", "Offline"), ("available", "Available")], required=False, **kwargs)

    def to_representation(self, value: str) -> str:
        return "available" if value == Driver.Availability.AVAILABLE else "offline"


class DriverV1Serializer(serializers.ModelSerializer):
    availability = V1AvailabilityField()

    class Meta:
        model = Driver
        fields = ["id", "name", "phone", "vehicle", "capacity", "active_order_count", "availability", "last_lat", "last_lon", "last_position_at"]


class PositionSerializer(serializers.Serializer):
    lat = StrictFloatField(min_value=-90, max_value=90)
    lon = StrictFloatField(min_value=-180, max_value=180)
    recorded_at = serializers.DateTimeField(required=False, help_text="When the phone took the fix; defaults to now")


@extend_schema(tags=["v1"])
class MeView(DriverAPIView):
    @extend_schema(operation_id="v1_me_retrieve", responses={200: DriverV1Serializer, **errors(401, 403)})
    def get(self, request: Request) -> Response:
        """The driver's own profile, availability and load."""
        return Response(DriverV1Serializer(self.driver).data)


@extend_schema(tags=["v1"])
class GoOnlineView(DriverAPIView):
    @extend_schema(operation_id="v1_me_online", request=None, responses={200: DriverV1Serializer, **errors(401, 403)})
    def post(self, request: Request) -> Response:
        """Start taking orders. Going online twice is not an error."""
        driver = driver_usecases.driver_go_online(driver_id=self.driver.pk, actor=driver_actor(self.driver))
        return Response(DriverV1Serializer(driver).data)


@extend_schema(tags=["v1"])
class GoOfflineView(DriverAPIView):
    @extend_schema(operation_id="v1_me_offline", request=None, responses={200: DriverV1Serializer, **errors(401, 403)})
    def post(self, request: Request) -> Response:
        """Stop taking new orders; orders already held stay with the driver."""
        driver = driver_usecases.driver_go_offline(driver_id=self.driver.pk, actor=driver_actor(self.driver))
        return Response(DriverV1Serializer(driver).data)


@extend_schema(tags=["v1"])
class PositionView(DriverAPIView):
    @extend_schema(
        operation_id="v1_me_position",
        request=PositionSerializer,
        responses={204: None, **errors(400, 401, 403, 409, described_as={409: "The driver is offline (`driver_offline`)"})},
    )
    def post(self, request: Request) -> Response:
        """Report where the driver is; used to pick the nearest driver for new orders. Refused
        (409 `driver_offline`) while the driver is offline."""
        body = PositionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        driver_usecases.driver_position_report(
            driver_id=self.driver.pk, lat=body.validated_data["lat"], lon=body.validated_data["lon"], at=body.validated_data.get("recorded_at")
        )
        return Response(status=204)
