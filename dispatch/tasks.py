"""Celery entry points of the core domain: thin wrappers over services."""

from dispatch import services
from observability.tasks import sweep_task


@sweep_task("dispatch.assign_orders_due")
def assign_orders_due() -> int:
    return services.assign_orders_due()
