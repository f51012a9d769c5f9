"""Driver API v2 over REST: the same offers, services and input validation (offers.inputs) as the socket, for apps without one."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from availability import services as availability
from dispatch.api import DriverAPIView, errors
from dispatch.models import Driver
from dispatch.services import driver_actor
from offers import selectors
from offers.frames import offer_frame
from offers.inputs import AvailabilitySerializer, DeclineSerializer
from offers.models import Offer
from usecases import drivers as driver_usecases
from usecases import offers as offer_usecases


class OfferV2Serializer(serializers.Serializer):
    def to_representation(self, offer: Offer) -> dict[str, Any]:
        return {**offer_frame(offer)["offer"], "state": offer.state}


class AnswerSerializer(serializers.Serializer):
    offer_id = serializers.IntegerField()
    result = serializers.CharField()
    order_id = serializers.IntegerField()


@extend_schema(tags=["v2"])
class PendingOffersView(DriverAPIView):
    @extend_schema(operation_id="v2_offers_list", responses={200: OfferV2Serializer(many=True), **errors(401, 403)})
    def get(self, request: Request) -> Response:
        """The driver's pending offer (a list of at most one), as the socket would send it."""
        return Response([OfferV2Serializer(o).data for o in selectors.driver_pending_offers(self.driver.pk)])


@extend_schema(tags=["v2"])
class AcceptOfferView(DriverAPIView):
    @extend_schema(operation_id="v2_offers_accept", request=None, responses={200: AnswerSerializer, **errors(401, 403, 404, 409)})
    def post(self, request: Request, offer_id: int) -> Response:
        """Accept: the order is yours. Sending it again answers the same."""
        offer = offer_usecases.offer_accept(offer_id=offer_id, driver=self.driver)
        return Response({"offer_id": offer.pk, "result": offer.state, "order_id": offer.order_id})


@extend_schema(tags=["v2"])
class DeclineOfferView(DriverAPIView):
    @extend_schema(operation_id="v2_offers_decline", request=DeclineSerializer, responses={200: AnswerSerializer, **errors(400, 401, 403, 404, 409)})
    def post(self, request: Request, offer_id: int) -> Response:
        """Decline, with an optional reason: the order moves on to the next driver."""
        body = DeclineSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        offer = offer_usecases.offer_decline(offer_id=offer_id, driver=self.driver, reason=body.validated_data["reason"])
        return Response({"offer_id": offer.pk, "result": offer.state, "order_id": offer.order_id})


@extend_schema(tags=["v2"])
class HeartbeatView(DriverAPIView):
    @extend_schema(operation_id="v2_heartbeat", request=None, responses={204: None, **errors(401, 403)})
    def post(self, request: Request) -> Response:
        """I am alive: a driver silent for longer than the heartbeat timeout goes offline."""
        availability.driver_heartbeat(driver_id=self.driver.pk)
        return Response(status=204)


@extend_schema(tags=["v2"])
class AvailabilityView(DriverAPIView):
    @extend_schema(operation_id="v2_availability", request=AvailabilitySerializer, responses={200: None, **errors(400, 401, 403, 409)})
    def post(self, request: Request) -> Response:
        """Go available, start a break of N minutes, end the break, or go offline."""
        body = AvailabilitySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        state, actor, driver_id = body.validated_data["state"], driver_actor(self.driver), self.driver.pk
        driver: Driver
        if state == "available":
            driver = driver_usecases.driver_go_online(driver_id=driver_id, actor=actor)
        elif state == "offline":
            driver = driver_usecases.driver_go_offline(driver_id=driver_id, actor=actor)
        elif state == "break":
            driver = driver_usecases.break_start(driver_id=driver_id, minutes=body.validated_data["minutes"], actor=actor)
        else:
            driver = driver_usecases.break_end(driver_id=driver_id, actor=actor)
        return Response({"availability": driver.availability, "break_ends_at": driver.break_ends_at})
