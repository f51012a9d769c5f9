"""The JSON frames the server sends to a driver (docs/driver-protocol.md describes each)."""

from typing import Any

from dispatch.errors import error_body
from dispatch.models import Order
from offers.models import Offer


def order_summary(order: Order) -> dict[str, Any]:
    return {
        "id": order.pk,
        "code": order.code,
        "status": order.status,
        "items": order.item_summary,
        "pickup": order.pickup_place,
        "dropoff": order.dropoff_place,
        "customer_name": order.customer_name,
        "customer_phone": order.customer_phone if order.status in Order.ACTIVE_STATUSES else "",
        "fee_minor": order.delivery_fee_minor,
        "currency": order.currency,
        "promised_at": order.promised_at.isoformat() if order.promised_at else None,
    }


def offer_frame(offer: Offer) -> dict[str, Any]:
    summary = order_summary(offer.order)
    summary.pop("customer_phone")  # only the driver who takes the order gets the phone number
    return {
        "type": "offer",
        "offer": {"id": offer.pk, "expires_at": offer.expires_at.isoformat(), "distance_m": offer.distance_m, "order": summary},
    }


def offer_withdrawn_frame(offer_id: int, reason: str) -> dict[str, Any]:
    """The offer is gone: `reason` is why it was withdrawn, or "expired" for a lapsed offer."""
    return {"type": "offer_withdrawn", "offer_id": offer_id, "reason": reason}


def offer_result_frame(offer: Offer) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "offer_result", "offer_id": offer.pk, "result": offer.state}
    if offer.state == Offer.State.ACCEPTED:
        frame["order"] = order_summary(offer.order)
    return frame


def order_update_frame(order: Order) -> dict[str, Any]:
    return {"type": "order_update", "order": order_summary(order)}


def order_taken_back_frame(order_id: int, code: str, reason: str) -> dict[str, Any]:
    """The order is no longer the driver's: reassigned because they went offline, silent or
    did not pick it up in time. The app drops it from its list."""
    return {"type": "order_taken_back", "order_id": order_id, "code": code, "reason": reason}


def error_frame(message_id: Any, code: str, message: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "error", "id": message_id, **error_body(code, message, detail)}


def ack_frame(message_id: Any, **result: Any) -> dict[str, Any]:
    return {"type": "ack", "id": message_id, **result}
