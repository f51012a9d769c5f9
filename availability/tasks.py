"""Celery entry points of availability: thin wrappers over the sweeps."""

from celery import shared_task

from availability import services
from observability.tasks import sweep_task


@sweep_task("availability.end_breaks_due")
def end_breaks_due() -> int:
    return services.end_breaks_due() + services.breaks_switched_off_due()


@sweep_task("availability.offline_silent_drivers_due")
def offline_silent_drivers_due() -> int:
    return services.offline_silent_drivers_due()


@shared_task(name="availability.breaks_end_all", ignore_result=True)
def breaks_end_all() -> int:
    return services.breaks_end_all(reason="switched_off")
