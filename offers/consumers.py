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
from django_guid import set_guid
from rest_framework import serializers

from availability import services as availability
from dispatch import layer_outbox
from dispatch.errors import DispatchError, InvalidInput
from dispatch.models import Driver
from dispatch.services import driver_actor
from offers import selectors
from offers.errors import CredentialsRevoked
from offers.frame_budget import FrameBudget
from offers.frames import ack_frame, error_frame
from offers.inputs import AppVersionSerializer, AuthSerializer, AvailabilitySerializer, DeclineFrameSerializer, LocationSerializer, OfferAnswerSerializer
from offers.notify import driver_group
from offers.socket_watch import socket_watch_add, socket_watch_discard
from usecases import drivers as driver_usecases
from usecases import offers as offer_usecases

logger = logging.getLogger(__name__)
CLOSE_UNAUTHENTICATED = 4401  # also: the token was revoked or the driver deactivated
CLOSE_REPLACED = 4409  # a newer socket of the same driver took this one's place
CLOSE_FLOODING = 4429  # kept sending frames after being told to slow down
MAX_FRAME_BYTES = settings.DISPATCH_SOCKET_MAX_FRAME_BYTES
MAX_ID_CHARS = 64  # a frame's id comes back in its answer: bounded like every other field


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _token_from_authorization(value: str) -> str:
    scheme, _, key = value.partition(" ")
    return key.strip() if scheme.lower() in ("token", "bearer") else ""


def _strict_json_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python's json reads them, JSON does not have them


def _validated(serializer_class: type[serializers.Serializer], frame: dict[str, Any]) -> dict[str, Any]:
    """The frame's fields, validated by the serializer the v2 REST API uses for the same message."""
    body = serializer_class(data=frame)
    if not body.is_valid():
        field, messages = next(iter(body.errors.items()))
        message = str(messages[0]) if isinstance(messages, list) and messages else "is not valid"
        raise InvalidInput(f"'{field}': {message}", field=field, errors=body.errors)
    return dict(body.validated_data)


def _with_live_credentials(key: str, user_id: int, call: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Run a service for the socket's driver only while its token and user are still valid.

    The check and the service share one trip to a database thread; a revocation committed
    after the check is seen by the next frame or the next timer tick.
    """
    if not selectors.driver_credentials_valid(key, user_id):
        raise CredentialsRevoked("The API token was revoked or the driver deactivated; this socket closes.")
    return call(**kwargs)


class DriverConsumer(AsyncWebsocketConsumer):
    """One driver socket. Once authenticated it holds no task or timer of ours: the process's
    socket timer (offers/socket_watch.py) vouches for it and re-checks its credentials."""

    driver: Driver | None = None

    async def connect(self) -> None:
        layer_outbox.server_loop_adopt()
        self.driver = None
        self.is_closing = False
        self.token_key = ""
        self.frame_budget = FrameBudget(settings.DISPATCH_SOCKET_FRAMES_PER_S, settings.DISPATCH_SOCKET_FRAME_BURST)
        self.auth_deadline: asyncio.TimerHandle | None = None
        await self.accept()
        token = _token_from_authorization(_header(self.scope, b"authorization"))
        try:
            if token:
                await self._authenticate(None, {"token": token, **_validated(AppVersionSerializer, {"app_version": _header(self.scope, b"x-app-version")})})
        except DispatchError as exc:
            await self._send(error_frame(None, exc.code, exc.message, exc.detail))
        except Exception:
            logger.exception("driver socket: authentication from the upgrade request failed")
            await self._send(error_frame(None, "internal_error", "The server could not authenticate this socket; send an auth frame."))
        if self.driver is None and not self.is_closing:
            # A timer, not a task: no coroutine is held while the socket waits.
            self.auth_deadline = asyncio.get_running_loop().call_later(settings.DISPATCH_SOCKET_AUTH_TIMEOUT_S, self._auth_deadline_passed)

    def _auth_deadline_passed(self) -> None:
        self.auth_closing = asyncio.ensure_future(self._close_unless_authenticated())

    async def _close_unless_authenticated(self) -> None:
        if self.driver is None and not self.is_closing:
            await self._send(error_frame(None, "unauthenticated", "Send an auth frame with your API token first."))
            await self._close(CLOSE_UNAUTHENTICATED)

    async def _close(self, code: int) -> None:
        self.is_closing = True
        await self.close(code=code)

    @property
    def watched(self) -> tuple[str, int, str, int]:
        """What the process's socket timer checks for this socket: channel, driver, token, user."""
        assert self.driver is not None
        return self.channel_name, self.driver.pk, self.token_key, self.driver.user_id

    async def credentials_revoked(self) -> None:
        """The socket timer found this socket's token or user revoked (a revocation also pokes
        the socket at once: `driver_credentials_changed`)."""
        await self._revoke(None)

    async def _close_if_revoked(self) -> None:
        assert self.driver is not None
        if not await database_sync_to_async(selectors.driver_credentials_valid)(self.token_key, self.driver.user_id):
            await self._revoke(None)

    async def _revoke(self, message_id: Any) -> None:
        if self.is_closing:
            return
        await self._send(error_frame(message_id, CredentialsRevoked.code, "The API token was revoked or the driver deactivated."))
        await self._close(CLOSE_UNAUTHENTICATED)

    async def driver_credentials_changed(self, event: dict[str, Any]) -> None:
        """A token of this driver was deleted or their user changed: check now, not at the next tick."""
        if self.driver is None or self.is_closing:
            return
        try:
            await self._close_if_revoked()
        except Exception:  # a failure here must not end the consumer; the timer asks again
            logger.exception("driver %s: the credentials check on a poke failed", self.driver.pk)

    async def socket_replaced(self, event: dict[str, Any]) -> None:
        """A newer socket of the same driver pushed this one out (DISPATCH_MAX_SOCKETS_PER_DRIVER)."""
        if self.is_closing:
            return
        await self._send(error_frame(None, "replaced", "A newer connection of this driver replaced this one."))
        await self._close(CLOSE_REPLACED)

    async def disconnect(self, code: int) -> None:
        self.is_closing = True
        if self.auth_deadline:
            self.auth_deadline.cancel()
        if self.driver is not None:
            socket_watch_discard(self)
            await self.channel_layer.group_discard(driver_group(self.driver.pk), self.channel_name)
            await database_sync_to_async(availability.driver_socket_closed)(channel_name=self.channel_name)

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame))

    async def _authenticate(self, message_id: Any, credentials: dict[str, Any]) -> None:
        token, app_version = credentials["token"], credentials["app_version"]
        driver = await database_sync_to_async(selectors.driver_for_token)(token)
        if driver is None:
            await self._send(error_frame(message_id, "unauthenticated", "The API token is not valid."))
            await self._close(CLOSE_UNAUTHENTICATED)
            return
        # Join the group before reading the state, so no frame sent in between can be missed.
        await self.channel_layer.group_add(driver_group(driver.pk), self.channel_name)
        try:
            open_socket = database_sync_to_async(driver_usecases.driver_socket_open)
            opened = await open_socket(driver_id=driver.pk, channel_name=self.channel_name, app_version=app_version)
        except BaseException:
            await self.channel_layer.group_discard(driver_group(driver.pk), self.channel_name)
            raise
        for channel_name in opened.evicted_channel_names:
            await self.channel_layer.send(channel_name, {"type": "socket.replaced"})
        self.driver, self.token_key = driver, token
        if self.auth_deadline:
            self.auth_deadline.cancel()
        socket_watch_add(self)
        if message_id is not None:
            await self._send(ack_frame(message_id, driver_id=self.driver.pk))
        for frame in opened.frames:
            await self._send(frame)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.is_closing:
            return
        set_guid(uuid.uuid4().hex)  # one correlation id per socket message, into its audit events
        # Every frame spends from the budget, bad ones too; the answer waits until the frame's
        # id is known, so that the app can tell which frame to resend.
        retry_after_s = self.frame_budget.take()
        if self.frame_budget.refused_in_a_row > settings.DISPATCH_SOCKET_FLOOD_CLOSE_AFTER:
            logger.warning("driver %s: socket closed for flooding", self.driver.pk if self.driver else None)
            await self._send(error_frame(None, "rate_limited", "Too many frames after being told to slow down; closing.", {"retry_after": retry_after_s}))
            await self._close(CLOSE_FLOODING)
            return
        if text_data is None or len(text_data.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
            await self._send(error_frame(None, "invalid_frame", f"Frames are JSON text of at most {MAX_FRAME_BYTES} bytes."))
            return
        try:
            frame = json.loads(text_data, parse_constant=_strict_json_constant)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
            await self._send(error_frame(None, "invalid_json", "The frame is not JSON."))
            return
        if not isinstance(frame, dict):
            await self._send(error_frame(None, "invalid_frame", "A frame is a JSON object."))
            return
        message_id = frame.get("id")
        if not isinstance(message_id, (str, int)) or isinstance(message_id, bool) or message_id == "" or len(str(message_id)) > MAX_ID_CHARS:
            await self._send(
                error_frame(
                    None,
                    "missing_id",
                    f"Every frame carries an 'id' (a string or an integer, at most {MAX_ID_CHARS} characters) to match its answer.",
                )
            )
            return
        if retry_after_s:  # refused before any database work
            await self._refuse_flood(message_id, retry_after_s)
            return
        frame_type = frame.get("type")
        # Every failure below ends as an error frame carrying the frame's id: never a dropped connection.
        try:
            result = await self._handle(message_id, frame_type, frame)
        except CredentialsRevoked:
            await self._revoke(message_id)
            return
        except DispatchError as exc:
            await self._send(error_frame(message_id, exc.code, exc.message, exc.detail))
            return
        except Exception:
            logger.exception("driver %s: %s frame failed", self.driver.pk if self.driver else None, str(frame_type)[:32])
            await self._send(error_frame(message_id, "internal_error", "The server could not handle this frame; nothing was changed."))
            return
        if result is not None:
            await self._send(ack_frame(message_id, **result))

    async def _refuse_flood(self, message_id: Any, retry_after_s: float) -> None:
        detail = {"retry_after": round(retry_after_s, 3), "frames_per_s": settings.DISPATCH_SOCKET_FRAMES_PER_S}
        await self._send(error_frame(message_id, "rate_limited", "Too many frames; slow down and resend after retry_after seconds.", detail))

    async def _handle(self, message_id: Any, frame_type: Any, frame: dict[str, Any]) -> dict[str, Any] | None:
        """Run one frame; returns what its ack carries, or None when it has been answered already."""
        if frame_type == "auth":
            if self.driver is not None:
                return {"driver_id": self.driver.pk}
            await self._authenticate(message_id, _validated(AuthSerializer, frame))
            return None
        if self.driver is None:
            await self._send(error_frame(message_id, "unauthenticated", "Send an auth frame with your API token first."))
            return None
        handler = self.HANDLERS.get(frame_type) if isinstance(frame_type, str) else None
        if handler is None:
            known = sorted([*self.HANDLERS, "auth"])
            await self._send(error_frame(message_id, "unknown_type", f"Unknown frame type {str(frame_type)[:32]!r}.", {"known": known}))
            return None
        return await handler(self, frame) or {}

    async def _as_driver(self, call: Callable[..., Any], **kwargs: Any) -> Any:
        """Call a service for this socket's driver, after checking its credentials still hold."""
        assert self.driver is not None
        return await database_sync_to_async(_with_live_credentials)(self.token_key, self.driver.user_id, call, kwargs)

    async def driver_frame(self, event: dict[str, Any]) -> None:
        """A frame for this driver from the channel layer group."""
        await self._send(event["frame"])

    # --- handlers: each parses, calls one service, returns what the ack carries ---------

    async def _accept(self, frame: dict[str, Any]) -> dict[str, Any]:
        fields = _validated(OfferAnswerSerializer, frame)
        offer = await self._as_driver(offer_usecases.offer_accept, offer_id=fields["offer_id"], driver=self.driver)
        return {"offer_id": offer.pk, "result": offer.state, "order_id": offer.order_id}

    async def _decline(self, frame: dict[str, Any]) -> dict[str, Any]:
        fields = _validated(DeclineFrameSerializer, frame)
        offer = await self._as_driver(offer_usecases.offer_decline, offer_id=fields["offer_id"], driver=self.driver, reason=fields["reason"])
        return {"offer_id": offer.pk, "result": offer.state}

    async def _heartbeat(self, frame: dict[str, Any]) -> None:
        assert self.driver is not None
        await self._as_driver(availability.driver_heartbeat, driver_id=self.driver.pk)

    async def _location(self, frame: dict[str, Any]) -> None:
        assert self.driver is not None
        fields = _validated(LocationSerializer, frame)
        await self._as_driver(
            driver_usecases.driver_position_report,
            driver_id=self.driver.pk,
            lat=fields["lat"],
            lon=fields["lon"],
            at=fields.get("recorded_at"),
            accuracy_m=fields.get("accuracy_m"),
        )

    async def _availability(self, frame: dict[str, Any]) -> dict[str, Any]:
        assert self.driver is not None
        fields = _validated(AvailabilitySerializer, frame)
        state = fields["state"]
        actor, driver_id = driver_actor(self.driver), self.driver.pk
        call: Callable[..., Driver]
        kwargs: dict[str, Any]
        if state == "available":
            call, kwargs = driver_usecases.driver_go_online, {}
        elif state == "offline":
            call, kwargs = driver_usecases.driver_go_offline, {}
        elif state == "break":
            call, kwargs = driver_usecases.break_start, {"minutes": fields["minutes"]}
        else:
            call, kwargs = driver_usecases.break_end, {}
        driver = await self._as_driver(call, driver_id=driver_id, actor=actor, **kwargs)
        return {"availability": driver.availability, "break_ends_at": driver.break_ends_at.isoformat() if driver.break_ends_at else None}

    HANDLERS: dict[str, Callable[["DriverConsumer", dict[str, Any]], Awaitable[Any]]] = {
        "accept": _accept,
        "decline": _decline,
        "heartbeat": _heartbeat,
        "location": _location,
        "availability": _availability,
    }
