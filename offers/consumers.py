"""The driver socket, `/ws/driver/`: offers and order updates out, answers and telemetry in.

Thin: each frame is parsed, handed to a service through database_sync_to_async, and
answered with an ack or an error frame carrying the frame's id. A bad frame never closes
the connection. The protocol is docs/driver-protocol.md.
"""

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils.dateparse import parse_datetime
from django_guid import set_guid

from availability import services as availability
from dispatch.errors import DispatchError, InvalidInput
from dispatch.models import Driver
from dispatch.services import driver_actor
from offers import selectors, services
from offers.frames import ack_frame, error_frame
from offers.notify import driver_group

logger = logging.getLogger(__name__)
CLOSE_UNAUTHENTICATED = 4401
MAX_FRAME_BYTES = 16 * 1024


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _token_from_authorization(value: str) -> str:
    scheme, _, key = value.partition(" ")
    return key.strip() if scheme.lower() in ("token", "bearer") else ""


def _number(frame: dict[str, Any], name: str) -> float:
    value = frame.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"'{name}' must be a number", field=name)
    return float(value)


def _integer(frame: dict[str, Any], name: str) -> int:
    value = frame.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"'{name}' must be an integer", field=name)
    return value


class DriverConsumer(AsyncWebsocketConsumer):
    driver: Driver | None = None

    async def connect(self) -> None:
        self.driver = None
        self.auth_deadline: asyncio.Task[None] | None = None
        await self.accept()
        token = _token_from_authorization(_header(self.scope, b"authorization"))
        if token:
            await self._authenticate(None, token, _header(self.scope, b"x-app-version"))
        else:
            self.auth_deadline = asyncio.ensure_future(self._close_unless_authenticated())

    async def _close_unless_authenticated(self) -> None:
        await asyncio.sleep(settings.DISPATCH_SOCKET_AUTH_TIMEOUT_S)
        if self.driver is None:
            await self._send(error_frame(None, "unauthenticated", "Send an auth frame with your API token first."))
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def disconnect(self, code: int) -> None:
        if self.auth_deadline:
            self.auth_deadline.cancel()
        if self.driver is not None:
            await self.channel_layer.group_discard(driver_group(self.driver.pk), self.channel_name)
            await database_sync_to_async(services.driver_socket_closed)(driver_id=self.driver.pk)

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame))

    async def _authenticate(self, message_id: Any, token: str, app_version: str) -> None:
        driver = await database_sync_to_async(selectors.driver_for_token)(token)
        if driver is None:
            await self._send(error_frame(message_id, "unauthenticated", "The API token is not valid."))
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # Join the group before reading the state, so no frame sent in between can be missed.
        await self.channel_layer.group_add(driver_group(driver.pk), self.channel_name)
        state_frames = await database_sync_to_async(services.driver_socket_connect)(driver_id=driver.pk, app_version=app_version)
        self.driver = driver
        if self.auth_deadline:
            self.auth_deadline.cancel()
        if message_id is not None:
            await self._send(ack_frame(message_id, driver_id=self.driver.pk))
        for frame in state_frames:
            await self._send(frame)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        set_guid(uuid.uuid4().hex)  # one correlation id per socket message, into its audit events
        if text_data is None or len(text_data) > MAX_FRAME_BYTES:
            await self._send(error_frame(None, "invalid_frame", f"Frames are JSON text of at most {MAX_FRAME_BYTES} bytes."))
            return
        try:
            frame = json.loads(text_data)
        except (json.JSONDecodeError, RecursionError):
            await self._send(error_frame(None, "invalid_json", "The frame is not JSON."))
            return
        if not isinstance(frame, dict):
            await self._send(error_frame(None, "invalid_frame", "A frame is a JSON object."))
            return
        message_id = frame.get("id")
        if not isinstance(message_id, (str, int)) or isinstance(message_id, bool) or message_id == "":
            await self._send(error_frame(None, "missing_id", "Every frame carries an 'id' (a string or an integer) to match its answer."))
            return
        frame_type = frame.get("type")
        if frame_type == "auth":
            if self.driver is not None:
                await self._send(ack_frame(message_id, driver_id=self.driver.pk))
                return
            token, app_version = frame.get("token"), frame.get("app_version", "")
            if not isinstance(token, str) or not isinstance(app_version, str):
                await self._send(error_frame(message_id, "invalid_input", "'token' and 'app_version' must be strings."))
                return
            await self._authenticate(message_id, token, app_version)
            return
        if self.driver is None:
            await self._send(error_frame(message_id, "unauthenticated", "Send an auth frame with your API token first."))
            return
        handler = self.HANDLERS.get(frame_type) if isinstance(frame_type, str) else None
        if handler is None:
            await self._send(error_frame(message_id, "unknown_type", f"Unknown frame type {frame_type!r}.", {"known": sorted(self.HANDLERS)}))
            return
        try:
            result = await handler(self, frame)
        except DispatchError as exc:
            await self._send(error_frame(message_id, exc.code, exc.message, exc.detail))
            return
        except Exception:
            logger.exception("driver %s: %s frame failed", self.driver.pk, frame_type)
            await self._send(error_frame(message_id, "internal_error", "The server could not handle this frame; nothing was changed."))
            return
        await self._send(ack_frame(message_id, **(result or {})))

    async def driver_frame(self, event: dict[str, Any]) -> None:
        """A frame for this driver from the channel layer group."""
        await self._send(event["frame"])

    # --- handlers: each parses, calls one service, returns what the ack carries ---------

    async def _accept(self, frame: dict[str, Any]) -> dict[str, Any]:
        offer = await database_sync_to_async(services.offer_accept)(offer_id=_integer(frame, "offer_id"), driver=self.driver)
        return {"offer_id": offer.pk, "result": offer.state, "order_id": offer.order_id}

    async def _decline(self, frame: dict[str, Any]) -> dict[str, Any]:
        reason = frame.get("reason", "")
        if not isinstance(reason, str):
            raise InvalidInput("'reason' must be a string", field="reason")
        offer = await database_sync_to_async(services.offer_decline)(offer_id=_integer(frame, "offer_id"), driver=self.driver, reason=reason)
        return {"offer_id": offer.pk, "result": offer.state}

    async def _heartbeat(self, frame: dict[str, Any]) -> None:
        assert self.driver is not None
        await database_sync_to_async(services.driver_socket_heartbeat)(driver_id=self.driver.pk)

    async def _location(self, frame: dict[str, Any]) -> None:
        assert self.driver is not None
        lat, lon = _number(frame, "lat"), _number(frame, "lon")
        recorded_at = None
        if "recorded_at" in frame:
            recorded_at = parse_datetime(frame["recorded_at"]) if isinstance(frame["recorded_at"], str) else None
            if recorded_at is None or recorded_at.tzinfo is None:
                raise InvalidInput("'recorded_at' must be an ISO 8601 time with a zone", field="recorded_at")
        await database_sync_to_async(availability.driver_position_update)(driver_id=self.driver.pk, lat=lat, lon=lon, at=recorded_at)

    async def _availability(self, frame: dict[str, Any]) -> dict[str, Any]:
        assert self.driver is not None
        state = frame.get("state")
        actor, driver_id = driver_actor(self.driver), self.driver.pk
        call: Callable[..., Driver]
        kwargs: dict[str, Any]
        if state == "available":
            call, kwargs = availability.driver_go_online, {}
        elif state == "offline":
            call, kwargs = availability.driver_go_offline, {}
        elif state == "break":
            call, kwargs = availability.break_start, {"minutes": _integer(frame, "minutes")}
        elif state == "end_break":
            call, kwargs = availability.break_end, {}
        else:
            raise InvalidInput("'state' must be one of available, break, end_break, offline", field="state")
        driver = await database_sync_to_async(call)(driver_id=driver_id, actor=actor, **kwargs)
        return {"availability": driver.availability, "break_ends_at": driver.break_ends_at.isoformat() if driver.break_ends_at else None}

    HANDLERS: dict[str, Callable[["DriverConsumer", dict[str, Any]], Awaitable[Any]]] = {
        "accept": _accept,
        "decline": _decline,
        "heartbeat": _heartbeat,
        "location": _location,
        "availability": _availability,
    }
