"""Celery entry points of availability: thin wrappers over the use cases."""

from celery import shared_task

from observability.tasks import sweep_task
from usecases import drivers


@sweep_task("availability.end_breaks_due")
def end_breaks_due() -> int:
    return drivers.end_breaks_due() + drivers.breaks_switched_off_due()


@sweep_task("availability.offline_silent_drivers_due")
def offline_silent_drivers_due() -> int:
    return drivers.offline_silent_drivers_due()


@shared_task(name="availability.breaks_end_all", ignore_result=True)
def breaks_end_all() -> int:
    return drivers.breaks_end_all(reason="switched_off")
