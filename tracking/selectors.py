"""What a tracking link shows, and to whom: the link found from its token, and the order's
public state, which is everything a page or a tracking socket ever sends.

Privacy by default: the shop's name, the order code, the steps and their times, the driver's
first name and vehicle kind, the drop-off's street line and point; the driver's position only
while this order is picked up and not ended, and only when fresher than the stale limit.
Never the driver's phone or full name, never the customer's name, phone or the rest of their
address, never another order.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html

from dispatch.models import Driver, Order
from eta.selectors import kept_arrival, order_estimate
from proof.models import DeliveryProof, HandoverCode
from tracking.links import TOKEN_BYTES, tracking_link_token, tracking_token_hash, tracking_token_is_current, tracking_url
from tracking.models import TrackingLink

S = Order.Status
# The shape of a token (base64url of TOKEN_BYTES bytes): anything else is not looked up.
TOKEN_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_BYTES * 4 // 3}}}")


@dataclass(frozen=True)
class LinkLookup:
    """`status` is "ok", "unknown", "expired" or "revoked"; `order` is set when "ok"."""

    status: str
    order: Order | None = None


def order_ended_at(order: Order) -> datetime | None:
    return {S.DELIVERED: order.delivered_at, S.CANCELLED: order.cancelled_at, S.FAILED: order.failed_at}.get(order.status)  # type: ignore[call-overload]


def link_has_expired(order: Order, now: datetime) -> bool:
    """A link works until DISPATCH_TRACKING_LINK_TTL_H after its order ended."""
    ended_at = order_ended_at(order)
    return ended_at is not None and now >= ended_at + timedelta(hours=settings.DISPATCH_TRACKING_LINK_TTL_H)


def tracking_link_lookup(token: str, now: datetime) -> LinkLookup:
    if not TOKEN_SHAPE.fullmatch(token):
        return LinkLookup("unknown")
    link = TrackingLink.objects.select_related("order__channel", "order__driver").filter(token_hash=tracking_token_hash(token)).first()
    if link is None or not tracking_token_is_current(link, token):
        return LinkLookup("unknown")
    if link.revoked_at is not None:
        return LinkLookup("revoked")
    if link_has_expired(link.order, now):
        return LinkLookup("expired")
    return LinkLookup("ok", link.order)


def _first_name(driver: Driver) -> str:
    return driver.name.split()[0] if driver.name.strip() else ""


_OUTCOME_WORDS: dict[str, str] = {
    S.DELIVERED: "Delivered",
    S.CANCELLED: "This order was cancelled",
    S.FAILED: "The delivery did not succeed",
}


def _steps(order: Order) -> list[dict[str, Any]]:
    """The steps of the delivery, each with its time once reached, the current one marked."""
    if order.status in (S.CANCELLED, S.FAILED):
        reached: list[tuple[str, str, datetime | None]] = [("received", "Order received", order.received_at)]
        if order.assigned_at:
            reached.append(("assigned", "Driver assigned", order.assigned_at))
        if order.picked_up_at:
            reached.append(("picked_up", "Picked up", order.picked_up_at))
        reached.append((order.status, _OUTCOME_WORDS[order.status], order_ended_at(order)))
        return [{"step": step, "label": label, "at": at, "is_done": True, "is_current": step == order.status} for step, label, at in reached]
    has_driver = order.status in (S.ASSIGNED, S.PICKED_UP, S.DELIVERED)
    steps = [
        ("received", "Order received", order.received_at, True),
        ("assigned", "Driver assigned", order.assigned_at if has_driver else None, has_driver),
        ("picked_up", "Picked up", order.picked_up_at, order.status in (S.PICKED_UP, S.DELIVERED)),
        ("on_the_way", "On the way", order.picked_up_at, order.status in (S.PICKED_UP, S.DELIVERED)),
        ("delivered", "Delivered", order.delivered_at, order.status == S.DELIVERED),
    ]
    current = {S.RECEIVED: "received", S.UNASSIGNED: "received", S.ASSIGNED: "assigned", S.PICKED_UP: "on_the_way", S.DELIVERED: "delivered"}[order.status]  # type: ignore[index]
    return [{"step": step, "label": label, "at": at if done else None, "is_done": done, "is_current": step == current} for step, label, at, done in steps]


def position_as_shown(*, lat: float, lon: float, at: datetime, now: datetime) -> dict[str, Any]:
    """A position as a page shows it: one older than the stale limit is shown as missing
    (`is_stale`), never as where the driver is."""
    age_s = max(0.0, (now - at).total_seconds())
    if age_s > settings.DISPATCH_TRACKING_POSITION_STALE_S:
        return {"is_stale": True, "at": at}
    return {"is_stale": False, "lat": lat, "lon": lon, "at": at, "age_s": round(age_s, 1)}


def driver_position_shown(order: Order, now: datetime) -> dict[str, Any] | None:
    """The driver's position as this order's page may show it, or None: only while this order
    is picked up, and only the driver carrying it."""
    driver = order.driver
    if order.status != S.PICKED_UP or driver is None or driver.last_position_at is None or driver.last_lat is None or driver.last_lon is None:
        return None
    return position_as_shown(lat=driver.last_lat, lon=driver.last_lon, at=driver.last_position_at, now=now)


def _reason_in_plain_words(order: Order) -> str:
    """Why the order ended without a delivery, for the customer: who cancelled (an ops note is
    internal and is not shown), or what the driver wrote when they could not deliver."""
    if order.status == S.CANCELLED:
        return "The shop cancelled this order." if order.cancel_reason.startswith(Order.SHOP_CANCEL_REASON) else "Our dispatch team cancelled this delivery."
    if order.status == S.FAILED:
        return f"The driver could not deliver it: {order.failure_reason}" if order.failure_reason else "The driver could not deliver it."
    return ""


def _proof_summary(order: Order) -> dict[str, bool]:
    """What proof the delivery has, never the proof itself (it is shown to staff only)."""
    kinds = set(DeliveryProof.objects.filter(order_id=order.pk).values_list("kind", flat=True))
    return {
        "has_photo": bool(order.proof_photo_ref) or DeliveryProof.Kind.PHOTO in kinds,
        "has_signature": DeliveryProof.Kind.SIGNATURE in kinds,
        "has_note": bool(order.proof_note),
    }


def _handover_code_shown(order: Order) -> str | None:
    """The code the customer gives the driver at the door: while a driver holds the order and
    until it was given."""
    if order.status not in Order.ACTIVE_STATUSES:
        return None
    return HandoverCode.objects.filter(order_id=order.pk, confirmed_at__isnull=True).values_list("code", flat=True).first()


def _arrival_shown(order: Order, now: datetime) -> dict[str, Any] | None:
    """The arrival as the customer is shown it: before pickup the estimate kept at assignment
    (a live one would track the driver before they collect this order); once picked up, the
    built-in estimate from the driver's position, which the page shows anyway. Never the routing
    engine: pages and sockets read on threads other requests and sockets wait for."""
    if order.driver is None:
        return None
    if order.status == S.ASSIGNED:
        estimate = kept_arrival(order, order.driver.vehicle)
    else:
        estimate = order_estimate(order, order.driver, now)
    return estimate.as_public() if estimate else None


def tracking_state(order: Order, now: datetime) -> dict[str, Any]:
    """The public state of an order, as its tracking page and socket show it."""
    is_ended = order.status in Order.TERMINAL_STATUSES
    driver = order.driver if order.status in (S.ASSIGNED, S.PICKED_UP, S.DELIVERED) else None
    street = order.dropoff_address.get("streetLine1") if isinstance(order.dropoff_address, dict) else None
    dropoff_point = {"lat": order.dropoff_lat, "lon": order.dropoff_lon} if order.dropoff_lat is not None and order.dropoff_lon is not None else None
    state: dict[str, Any] = {
        "shop": order.channel.name,
        "code": order.code,
        # A customer sees one waiting step: whether dispatch already tried is not theirs to follow.
        "status": S.RECEIVED if order.status == S.UNASSIGNED else order.status,
        "is_ended": is_ended,
        "steps": _steps(order),
        "driver": {"first_name": _first_name(driver), "vehicle": driver.get_vehicle_display()} if driver else None,
        "dropoff": {"street": street if isinstance(street, str) else "", "point": None if is_ended else dropoff_point},
        "position": driver_position_shown(order, now),
        "stale_after_s": settings.DISPATCH_TRACKING_POSITION_STALE_S,
        "eta": _arrival_shown(order, now),
        "handover_code": _handover_code_shown(order),
        "server_time": now,
    }
    if is_ended:
        state["outcome"] = {
            "status": order.status,
            "words": _OUTCOME_WORDS[order.status],  # type: ignore[index]
            "at": order_ended_at(order),
            "reason": _reason_in_plain_words(order),
            "proof": _proof_summary(order) if order.status == S.DELIVERED else None,
        }
    return state


def tracking_token_of_order(order_id: int) -> str | None:
    """The token of the order's link, made again from its nonce (tracking.services says why);
    None when it has none or the tracking key changed since."""
    link = TrackingLink.objects.filter(order_id=order_id).first()
    return tracking_link_token(link) if link is not None else None


_LINK_WORDS = {
    "live": "works now",
    "expired": "no longer works: the delivery ended more than the link's lifetime ago",
    "revoked": "withdrawn by staff",
    "unusable": "dead: the tracking key changed since it was made",
}


@dataclass(frozen=True)
class TrackingLinkShown:
    """An order's tracking link as staff see it: `status` is "live", "expired", "revoked",
    "unusable" or "none"; `url` when it can be made (a withdrawn link is shown, struck)."""

    status: str
    url: str | None = None

    @property
    def words(self) -> str:
        return _LINK_WORDS.get(self.status, "none")

    def as_html(self) -> str:
        if self.url is None:
            return format_html("{}", self.words)
        if self.status != "live":
            return format_html("<del>{}</del> ({})", self.url, self.words)
        return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a> ({})', self.url, self.url, self.words)


def tracking_link_shown(order_id: int, now: datetime | None = None) -> TrackingLinkShown:
    link = TrackingLink.objects.select_related("order").filter(order_id=order_id).first()
    if link is None:
        return TrackingLinkShown("none")
    token = tracking_link_token(link)
    if token is None:
        return TrackingLinkShown("unusable")
    url = tracking_url(token)
    if link.revoked_at is not None:
        return TrackingLinkShown("revoked", url)
    if link_has_expired(link.order, now or timezone.now()):
        return TrackingLinkShown("expired", url)
    return TrackingLinkShown("live", url)
