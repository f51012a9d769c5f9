"""The service's ASGI app plus a bare echo socket, the baseline for socket latency."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

from dispatch.asgi import django_asgi_app
from offers.consumers import DriverConsumer
from tracking.consumers import TrackingConsumer


class EchoConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(
            [path("ws/driver/", DriverConsumer.as_asgi()), path("ws/track/<str:token>/", TrackingConsumer.as_asgi()), path("ws/echo/", EchoConsumer.as_asgi())]
        ),
    }
)
