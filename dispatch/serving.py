"""The ASGI server's command line, as the service runs in production (README, "Running in
production"): `manage.py serve`, the live and production-shape tests and the benchmarks all
start uvicorn through it, so they measure and test what is deployed."""

import sys

from django.conf import settings

ASGI_APP = "dispatch.asgi:application"


def uvicorn_command(*, host: str, port: int, app: str = ASGI_APP) -> list[str]:
    """uvicorn with the sans-I/O WebSocket protocol, no per-message compression (it tripled
    the memory of an idle socket) and frames no bigger than the driver protocol allows."""
    return [
        *(sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port), "--lifespan", "off"),
        *("--ws", "websockets-sansio", "--ws-per-message-deflate", "false", "--ws-max-size", str(settings.DISPATCH_WS_MAX_MESSAGE_BYTES)),
    ]
