"""ASGI entry point: HTTP through Django (in one trip to a thread per request, see
dispatch/asgi_http.py), the driver and tracking sockets through Channels."""

import os

import django
from channels.routing import ProtocolTypeRouter, URLRouter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatch.settings")
django.setup(set_prefix=False)

from django.urls import path  # noqa: E402  (after Django is set up)

from dispatch.asgi_http import OneHopASGIHandler  # noqa: E402
from offers.consumers import DriverConsumer  # noqa: E402
from tracking.consumers import TrackingConsumer  # noqa: E402

django_asgi_app = OneHopASGIHandler()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("ws/driver/", DriverConsumer.as_asgi()), path("ws/track/<str:token>/", TrackingConsumer.as_asgi())]),
    }
)
