"""Telling drivers about their offers: a socket frame when they are connected, a push otherwise.

The database is the truth; a frame is a hint. A driver who reconnects is sent their pending
offer and active orders again, so a lost frame costs nothing but a little time.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from offers.frames import offer_frame, offer_result_frame, offer_withdrawn_frame
from offers.models import Offer

logger = logging.getLogger(__name__)


def driver_group(driver_id: int) -> str:
    return f"driver.{driver_id}"


def offer_event_send(frame_type: str, offer_id: int) -> None:
    offer = Offer.objects.select_related("order", "order__channel", "driver").get(pk=offer_id)
    if frame_type == "offer":
        frame = offer_frame(offer)
    elif frame_type == "offer_result":
        frame = offer_result_frame(offer)
    else:
        frame = offer_withdrawn_frame(offer)
    driver_frame_send(offer.driver_id, frame)
    if frame_type == "offer":
        from offers.push import push_if_not_connected

        push_if_not_connected(offer)


def driver_frame_send(driver_id: int, frame: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(driver_group(driver_id), {"type": "driver.frame", "frame": frame})
    except Exception:  # a frame is a hint: never let the layer fail the caller
        logger.exception("could not send a %s frame to driver %s", frame.get("type"), driver_id)
