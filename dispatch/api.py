"""Driver API v1: the driver's own orders and their progress. Frozen: see docs/api/v1.yaml."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dispatch import selectors, services
from dispatch.errors import NotFound
from dispatch.models import Driver, Order
from dispatch.serializer_fields import StrictCharField
from usecases import orders as order_usecases


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. illegal_transition")
    message = serializers.CharField()
    detail = serializers.DictField()


def errors(*statuses: int, described_as: dict[int, str] | None = None) -> dict[int, OpenApiResponse]:
    """The error answers of an endpoint for its schema, each `{code, message, detail}`;
    `described_as` words a status the endpoint's own way."""
    described = {
        400: "The request body is not valid",
        401: "Missing or wrong API token",
        403: "The token does not belong to a driver",
        404: "No such order among the driver's own",
        409: "The order is not in a state that allows this",
    }
    described.update(described_as or {})
    return {code: OpenApiResponse(ErrorSerializer, description=described[code]) for code in statuses}


class IsDriver(permissions.BasePermission):
    message = "This API is for drivers: the token does not belong to one."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and hasattr(request.user, "driver"))


class DriverAPIView(APIView):
    permission_classes = [permissions.IsAuthenticated, IsDriver]

    @property
    def driver(self) -> Driver:
        return self.request.user.driver  # type: ignore[union-attr]


class PlaceSerializer(serializers.Serializer):
    address = serializers.CharField()
    lat = serializers.FloatField(allow_null=True)
    lon = serializers.FloatField(allow_null=True)


class OrderV1Serializer(serializers.ModelSerializer):
    pickup = serializers.SerializerMethodField()
    dropoff = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id",
            "code",
            "status",
            "pickup",
            "dropoff",
            "customer_name",
            "customer_phone",
            "item_summary",
            "total_minor",
            "delivery_fee_minor",
            "currency",
            "promised_at",
            "assigned_at",
            "picked_up_at",
            "delivered_at",
            "failed_at",
            "cancelled_at",
            "failure_reason",
        ]

    @extend_schema_field(PlaceSerializer)
    def get_pickup(self, order: Order) -> dict[str, Any]:
        return order.pickup_place

    @extend_schema_field(PlaceSerializer)
    def get_dropoff(self, order: Order) -> dict[str, Any]:
        return order.dropoff_place


class DeliveredSerializer(serializers.Serializer):
    note = StrictCharField(required=False, allow_blank=True, max_length=1000, default="")
    photo_ref = StrictCharField(required=False, allow_blank=True, max_length=500, default="", help_text="Reference of an uploaded proof photo")
    handover_code = StrictCharField(
        required=False, allow_blank=True, max_length=16, default="", help_text="The code the customer gives at the door, when the order requires one"
    )


class FailedSerializer(serializers.Serializer):
    # Kept as sent: trimmed, a reason of Unicode spaces (say, a no-break space) became blank and
    # was refused, although the published v1 schema (a string of 1 to 255) allows it.
    reason = StrictCharField(max_length=255, trim_whitespace=False)


def _own_order(driver: Driver, order_id: int) -> Order:
    order = Order.objects.select_related("channel").filter(pk=order_id, driver=driver).first()
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def _render(order_id: int) -> Response:
    return Response(OrderV1Serializer(Order.objects.select_related("channel").get(pk=order_id)).data)


@extend_schema(tags=["v1"])
class CurrentOrdersView(DriverAPIView):
    @extend_schema(operation_id="v1_orders_list", responses={200: OrderV1Serializer(many=True), **errors(401, 403)})
    def get(self, request: Request) -> Response:
        """The driver's current orders (assigned or picked up), oldest assignment first."""
        return Response(OrderV1Serializer(selectors.driver_current_orders(self.driver), many=True).data)


@extend_schema(tags=["v1"])
class OrderDetailView(DriverAPIView):
    @extend_schema(operation_id="v1_orders_retrieve", responses={200: OrderV1Serializer, **errors(401, 403, 404)})
    def get(self, request: Request, order_id: int) -> Response:
        """One of the driver's own orders, in any status."""
        return Response(OrderV1Serializer(_own_order(self.driver, order_id)).data)


@extend_schema(tags=["v1"])
class OrderPickedUpView(DriverAPIView):
    @extend_schema(operation_id="v1_orders_picked_up", request=None, responses={200: OrderV1Serializer, **errors(401, 403, 404, 409)})
    def post(self, request: Request, order_id: int) -> Response:
        """Report that the order was collected at the pickup point."""
        order = order_usecases.order_pick_up(order_id=order_id, driver=self.driver)
        return _render(order.pk)


@extend_schema(tags=["v1"])
class OrderDeliveredView(DriverAPIView):
    @extend_schema(operation_id="v1_orders_delivered", request=DeliveredSerializer, responses={200: OrderV1Serializer, **errors(400, 401, 403, 404, 409)})
    def post(self, request: Request, order_id: int) -> Response:
        """Report delivery, with an optional proof (a note and a photo reference), and the
        customer's handover code when the order requires one (409 `handover_code_required`,
        `handover_code_wrong` with `attempts_left`, or `handover_code_locked`)."""
        body = DeliveredSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        order = order_usecases.order_deliver(
            order_id=order_id,
            driver=self.driver,
            proof_note=body.validated_data["note"],
            proof_photo_ref=body.validated_data["photo_ref"],
            handover_code=body.validated_data["handover_code"] or None,
        )
        return _render(order.pk)


@extend_schema(tags=["v1"])
class OrderFailedView(DriverAPIView):
    @extend_schema(operation_id="v1_orders_failed", request=FailedSerializer, responses={200: OrderV1Serializer, **errors(400, 401, 403, 404, 409)})
    def post(self, request: Request, order_id: int) -> Response:
        """Report that the delivery could not be made, with the reason."""
        body = FailedSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        order = order_usecases.order_fail(order_id=order_id, driver=self.driver, actor=services.driver_actor(self.driver), reason=body.validated_data["reason"])
        return _render(order.pk)
