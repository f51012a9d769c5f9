"""Celery entry point of the arrival estimates' sweep."""

from django.utils import timezone

from eta import services
from observability.tasks import sweep_task


@sweep_task("eta.travel_profiles_refresh_due")
def travel_profiles_refresh_due() -> int:
    return services.travel_profiles_refresh_due(now=timezone.now())
