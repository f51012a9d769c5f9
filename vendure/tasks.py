"""Celery tasks of the Vendure integration."""

from celery import Task, shared_task
from django.conf import settings

from vendure import services
from vendure.admin_api import VendureRejected, VendureUnavailable


@shared_task(
    bind=True,
    name="vendure.report_fulfillment_step",
    autoretry_for=(VendureUnavailable,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=settings.VENDURE_REPORT_MAX_RETRIES,
    ignore_result=True,
)
def report_fulfillment_step(self: Task, order_id: int, step: str) -> None:
    try:
        services.fulfillment_report(order_id=order_id, step=step)
    except VendureRejected as exc:
        services.fulfillment_report_failed(order_id=order_id, step=step, error=str(exc))
    except VendureUnavailable as exc:
        if self.request.retries >= (self.max_retries or 0):
            services.fulfillment_report_failed(order_id=order_id, step=step, error=f"gave up after {self.request.retries} retries: {exc}")
            return
        raise
