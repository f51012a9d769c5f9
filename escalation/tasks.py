"""Celery entry points of escalation: thin wrappers over the services and use cases."""

from celery import shared_task

from escalation import services
from observability.tasks import sweep_task
from usecases import reassignment


@sweep_task("escalation.escalate_orders_due")
def escalate_orders_due() -> int:
    return reassignment.escalate_orders_due()


@sweep_task("escalation.send_notifications_due")
def send_notifications_due() -> int:
    return services.send_notifications_due()


@shared_task(name="escalation.send_notification", ignore_result=True)
def send_notification(notification_id: int) -> bool:
    return services.notification_send(notification_id=notification_id)


@shared_task(name="escalation.reassign_driver_orders", ignore_result=True)
def reassign_driver_orders(driver_id: int, reason: str) -> int:
    return reassignment.driver_orders_reassign(driver_id=driver_id, reason=reason)
