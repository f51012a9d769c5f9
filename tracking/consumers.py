"""`/ws/track/<token>/`: a tracking page's socket. It only ever sends, and only its own order.

The order is fixed at connect (from the token, checked like the page); the socket joins that
order's group and nothing else, and a client's frames cannot change that. On "changed" it
reads its own order's public state again (and closes once the link is dead); a position is
passed on only when it is for its order and from the driver carrying it.
"""

import json
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from dispatch.models import Order
from tracking.access import tracking_lookup_limited
from tracking.notify import tracking_group
from tracking.selectors import LinkLookup, position_as_shown, tracking_link_lookup, tracking_state

# Close codes a page tells apart: the link is unknown, ended or withdrawn, or the client was limited.
CLOSE_FOR_STATUS = {"unknown": 4404, "expired": 4410, "revoked": 4410, "limited": 4429}


def _carrier(order: Order) -> int | None:
    """The driver whose positions this order's page may show: its driver, while picked up."""
    return order.driver_id if order.status == Order.Status.PICKED_UP else None


def _first_state_read(address: str, token: str) -> tuple[LinkLookup, dict[str, Any] | None]:
    """The link (counted against the client's address) and its order's state, in one trip to a
    database thread: the state reads the arrival's travel profile and the proofs."""
    lookup = tracking_lookup_limited(address, token)
    return lookup, tracking_state(lookup.order, timezone.now()) if lookup.order is not None else None


def _state_read(token: str) -> tuple[LinkLookup, dict[str, Any] | None]:
    now = timezone.now()
    lookup = tracking_link_lookup(token, now)
    return lookup, tracking_state(lookup.order, now) if lookup.order is not None else None


class TrackingConsumer(AsyncWebsocketConsumer):
    order_id: int | None = None
    token = ""
    carrier_id: int | None = None  # the driver whose position this page may show, while picked up

    async def connect(self) -> None:
        token = self.scope["url_route"]["kwargs"]["token"]
        address = (self.scope.get("client") or ("", 0))[0] or ""
        lookup, state = await database_sync_to_async(_first_state_read)(address, token)
        await self.accept()
        if lookup.order is None or state is None:
            await self.close(code=CLOSE_FOR_STATUS[lookup.status])
            return
        self.token, self.order_id = token, lookup.order.pk
        await self.channel_layer.group_add(tracking_group(self.order_id), self.channel_name)
        self.carrier_id = _carrier(lookup.order)
        await self._send({"type": "state", "state": state})

    async def disconnect(self, code: int) -> None:
        if self.order_id is not None:
            await self.channel_layer.group_discard(tracking_group(self.order_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Nothing a client sends changes what this socket follows.
        await self._send({"type": "error", "code": "read_only", "message": "This socket only sends updates of its own order."})

    async def track_changed(self, event: dict[str, Any]) -> None:
        lookup, state = await database_sync_to_async(_state_read)(self.token)
        if state is None or lookup.order is None or lookup.order.pk != self.order_id:
            await self._send({"type": "gone", "status": lookup.status})
            await self.close(code=CLOSE_FOR_STATUS.get(lookup.status, 4410))
            return
        self.carrier_id = _carrier(lookup.order)
        await self._send({"type": "state", "state": state})

    async def track_position(self, event: dict[str, Any]) -> None:
        if event.get("order") != self.order_id or self.carrier_id is None or event.get("driver") != self.carrier_id:
            return
        position = position_as_shown(lat=event["lat"], lon=event["lon"], at=datetime.fromisoformat(event["at"]), now=timezone.now())
        await self._send({"type": "position", "position": position, "eta": event.get("eta")})

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, cls=DjangoJSONEncoder))
