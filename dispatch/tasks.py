"""Celery entry points of the core domain: thin wrappers over services."""

from celery import shared_task

from dispatch import services


@shared_task(name="dispatch.assign_orders_due", ignore_result=True)
def assign_orders_due() -> int:
    return services.assign_orders_due()
