"""Celery entry points of the core domain: thin wrappers over the use cases."""

from celery import shared_task

from observability.tasks import sweep_task
from usecases import dispatching


@sweep_task("dispatch.assign_orders_due")
def assign_orders_due() -> int:
    return dispatching.assign_orders_due()


@shared_task(name="dispatch.assign_orders_for_driver", ignore_result=True)
def assign_orders_for_driver(driver_id: int) -> int:
    return dispatching.assign_orders_for_driver(driver_id=driver_id)
