"""Celery tasks of the Vendure integration: thin wrappers over the services."""

from celery import shared_task

from observability.tasks import sweep_task
from vendure import services


@shared_task(name="vendure.report_fulfillment_step", ignore_result=True)
def report_fulfillment_step(order_id: int, step: str) -> None:
    """A nudge right after commit; the step's row and the sweep own the report."""
    services.fulfillment_step_send(order_id=order_id, step=step)


@sweep_task("vendure.report_fulfillments_due")
def report_fulfillments_due() -> int:
    return services.report_fulfillments_due()
