"""The Celery application shared by workers, beat and the embedded runner."""

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatch.settings")

app = Celery("dispatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_shutdown.connect
def _socket_messages_flush(**kwargs: Any) -> None:
    from dispatch import layer_outbox

    layer_outbox.flush_before_exit()
