"""Start the whole service: ASGI server (HTTP and WebSocket), Celery worker and Celery beat.

On the embedded default (no REDIS_URL) the three run in this one process, sharing the
in-process channel layer and broker; with Redis they run as three processes. Ctrl-C stops all.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from dispatch.serving import ASGI_APP, uvicorn_command


def port_number(value: str) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 5 and 1 <= int(value) <= 65535):
        raise argparse.ArgumentTypeError(f"a TCP port is 1 to 65535 (got {value!r})")
    return int(value)


class Command(BaseCommand):
    help = "Run the ASGI server, a Celery worker and Celery beat together (Ctrl-C stops them all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=port_number, default=8000)
        parser.add_argument("--simulate", action="store_true", help="Also run the simulated shop and drivers (manage.py simulate)")

    def handle(self, *args: Any, **options: Any) -> None:
        simulator = None
        if options["simulate"]:
            base_url = f"http://{options['host']}:{options['port']}"
            simulator = subprocess.Popen([sys.executable, "manage.py", "simulate", "--base-url", base_url])  # noqa: S603 (our own command)
        try:
            if settings.IS_EMBEDDED:
                self._run_embedded(options["host"], options["port"], before_stop=lambda: _stop(simulator))
            else:
                self._run_processes(options["host"], options["port"])
        finally:
            _stop(simulator)

    def _run_embedded(self, host: str, port: int, before_stop: Any = None) -> None:
        import uvicorn
        from celery.beat import EmbeddedService
        from celery.worker import WorkController

        from dispatch.celery import app

        worker = WorkController(
            app=app,
            pool="solo",
            concurrency=1,
            hostname="embedded@localhost",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="WARNING",
        )
        threading.Thread(target=worker.start, name="celery-worker", daemon=True).start()
        beat = EmbeddedService(app, thread=True, scheduler_cls=settings.CELERY_BEAT_SCHEDULER)
        beat.start()
        self.stdout.write("Embedded mode: SQLite, in-process channel layer, worker and beat in this process.")
        ws_max_size = settings.DISPATCH_WS_MAX_MESSAGE_BYTES
        config = uvicorn.Config(
            ASGI_APP, host=host, port=port, ws="websockets-sansio", ws_per_message_deflate=False, ws_max_size=ws_max_size, lifespan="off", log_level="warning"
        )
        try:
            uvicorn.Server(config).run()
        finally:
            if before_stop:
                before_stop()  # the simulator first: the worker may take a while to stop
            beat.stop()
            worker.stop(in_sighandler=False)

    def _run_processes(self, host: str, port: int) -> None:
        python = sys.executable
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(_fresh_metrics_dir())}
        commands = {
            "asgi": uvicorn_command(host=host, port=port),
            "worker": [python, "-m", "celery", "-A", "dispatch", "worker", "--loglevel", "INFO", "--concurrency", "2"],
            "beat": [python, "-m", "celery", "-A", "dispatch", "beat", "--loglevel", "INFO"],
        }
        processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}  # noqa: S603 (our own fixed commands)
        self.stdout.write(f"Started {', '.join(f'{n} (pid {p.pid})' for n, p in processes.items())}.")
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, process in processes.items():
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with {process.returncode}; stopping the rest.")
                        stopping = True
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
            for process in processes.values():
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


def _fresh_metrics_dir() -> Path:
    """Where the three processes write their metrics (prometheus-client's multiprocess mode).

    Emptied at each start: files of processes from an earlier run would count again."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.VAR_DIR / "prometheus")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _stop(process: "subprocess.Popen[bytes] | None") -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
