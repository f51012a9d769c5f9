"""The Celery application shared by workers, beat and the embedded runner."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatch.settings")

app = Celery("dispatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
