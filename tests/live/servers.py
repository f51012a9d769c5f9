"""Real uvicorn processes serving the test database, for tests that need real sockets."""

import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.db import connection

from dispatch.serving import uvicorn_command

ROOT = Path(__file__).resolve().parents[2]


def wait_until_healthy(base_url, timeout_s=30):
    """Block until the server at base_url answers /healthz; raise if it never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(f"{base_url}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def uvicorn_servers(count=1, extra_env=None):
    """Start `count` ASGI servers on the test database and the real Redis; yield their base URLs."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    ports = [free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [*uvicorn_command(host="127.0.0.1", port=port), "--log-level", "warning", "--no-access-log", "--backlog", "4096"],
            cwd=ROOT,
            env=env,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url in urls:
            wait_until_healthy(url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()  # a graceful shutdown still draining sockets: enough for a test
                process.wait(timeout=10)
