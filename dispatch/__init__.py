"""The project package and the core domain: zones, shops, drivers, orders and v1 assignment."""

from dispatch.celery import app as celery_app

__all__ = ["celery_app"]
