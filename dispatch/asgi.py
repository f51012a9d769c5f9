"""ASGI entry point: HTTP through Django, the driver socket through Channels."""

import os

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatch.settings")

django_asgi_app = get_asgi_application()

from django.urls import path  # noqa: E402  (after Django is set up)

from offers.consumers import DriverConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("ws/driver/", DriverConsumer.as_asgi())]),
    }
)
