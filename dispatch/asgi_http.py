"""HTTP on the ASGI server: Django's ASGI handler, with everything sync about a request done
in one trip to a thread.

Django's own handler runs the middleware chain in async mode, where every sync part is a
trip from the event loop to a thread and back: the request_started signal, each hook of each
middleware (Django's own middlewares are "async-capable", but in async mode each of their
hooks is still a sync_to_async call), the view, and the response's close. That was 17 trips
per request here, on a fresh thread per request that was started and joined. Measured in one
process with both handlers taking turns, a bare signed insert 8 at a time: 8.8 ms of the
server's time per request with Django's handler, 4.7 with this one.

All of the project's views are sync and every middleware it uses can run sync, so here the
chain runs in its sync mode, in one trip to a thread together with the signal, the view and
(for a response that is not streamed) its close; the event loop only reads the body and
writes the response. The thread is kept for a later request. A streamed response is read
and closed on the same thread, as Django does it. An async view would still work: Django
adapts it to the sync chain (at the cost of a trip back to the loop).
"""

import asyncio
import contextlib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponseBase, JsonResponse
from django.urls import set_script_prefix

from dispatch import layer_outbox
from dispatch.errors import error_body

# Threads kept between requests; a burst of more concurrent requests starts threads of its own
# and ends them afterwards, as Django does for every request.
IDLE_THREADS_KEPT = 32


class _RequestThreads:
    """Single-thread executors for requests, kept for reuse. Used from the event loop only."""

    def __init__(self) -> None:
        self.idle: list[ThreadPoolExecutor] = []

    def take(self) -> ThreadPoolExecutor:
        return self.idle.pop() if self.idle else ThreadPoolExecutor(max_workers=1, thread_name_prefix="http-request")

    def give_back(self, executor: ThreadPoolExecutor, *, is_reusable: bool) -> None:
        if is_reusable and len(self.idle) < IDLE_THREADS_KEPT:
            self.idle.append(executor)
        else:
            executor.shutdown(wait=False)


class _BodyTooLarge(Exception):
    """The request's body grew past DISPATCH_MAX_REQUEST_BODY_BYTES while it was read."""


def _declared_length(scope: dict[str, Any]) -> int:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # Django answers a malformed length itself
    return 0


class OneHopASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self._threads = _RequestThreads()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        layer_outbox.server_loop_adopt()
        executor = self._threads.take()
        is_reusable = False
        try:
            # Every thread-sensitive call of this request (ours, Django's for a streamed
            # response, a signal's receivers) runs on this one thread, as in Django.
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
            is_reusable = True
        finally:
            self._threads.give_back(executor, is_reusable=is_reusable)

    def _respond(self, scope: dict[str, Any], body_file: Any) -> tuple[HttpResponseBase, bool]:
        """The sync part of a request, on its thread; returns the response and whether it
        was closed already (everything but a streamed response)."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
            if response.streaming:
                return response, False
        assert response is not None
        response.close()  # the body is in memory: request_finished (and its cleanup) need not wait for the send
        return response, True

    async def read_body(self, receive: Any) -> Any:
        """Django's read_body, refusing a body larger than DISPATCH_MAX_REQUEST_BODY_BYTES as it
        arrives: Django spools any body to disk before a view can look at its size, so a client
        could otherwise fill the disk with one request, declared or chunked."""
        limit = settings.DISPATCH_MAX_REQUEST_BODY_BYTES
        body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")  # noqa: SIM115 (handed to the request, which closes it)
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                body_file.close()
                raise _BodyTooLarge()
            body_file.write(chunk)
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    async def _body_too_large(self, send: Any) -> None:
        limit = settings.DISPATCH_MAX_REQUEST_BODY_BYTES
        response = JsonResponse(error_body("body_too_large", f"A request body is at most {limit} bytes."), status=413)
        response["Connection"] = "close"
        await self.send_response(response, send)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's ASGIHandler.handle (5.2), with the sync work done by `_respond` in one trip."""
        if _declared_length(scope) > settings.DISPATCH_MAX_REQUEST_BODY_BYTES:
            await self._body_too_large(send)  # said up front: not one byte of it is read
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        except _BodyTooLarge:
            await self._body_too_large(send)
            return
        set_script_prefix(get_script_prefix(scope))

        async def process_request() -> tuple[HttpResponseBase, bool]:
            response, is_closed = await sync_to_async(self._respond, thread_sensitive=True)(scope, body_file)
            with contextlib.suppress(asyncio.CancelledError):  # the client disconnected during the send
                await self.send_response(response, send)
            return response, is_closed

        # Catch a disconnect while the response is made, as Django does.
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        responding = asyncio.create_task(process_request())
        tasks: list[asyncio.Task[Any]] = [listening, responding]  # checked, and cancelled, in this order
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response, is_closed = responding.result()
        except asyncio.CancelledError:
            # Runs on the request's thread once the view there has finished, as in Django.
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if not is_closed:
                await sync_to_async(response.close)()
        body_file.close()
