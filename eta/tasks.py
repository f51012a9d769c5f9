"""Celery entry point of the arrival estimates' sweep."""

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from eta import services
from observability.tasks import sweep_task


@sweep_task("eta.travel_profiles_refresh_due")
def travel_profiles_refresh_due() -> int:
    return services.travel_profiles_refresh_due(now=timezone.now())


@shared_task(name="eta.estimate_refine", ignore_result=True)
def estimate_refine(order_id: int, fields: list[str], built_in_at: str, now: str) -> None:
    """A kept estimate refined by the routing engine (idempotent: it writes only over the
    built-in estimate it was asked about; a lost message leaves that estimate, as shown)."""
    stage = (fields[0], fields[1], fields[2])
    services.estimate_refine_with_routing(order_id, stage, datetime.fromisoformat(built_in_at), datetime.fromisoformat(now))
