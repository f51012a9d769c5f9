"""Celery entry points of escalation's own services (notifications). The escalation sweep,
which reassigns before it escalates, is a use case: `usecases.tasks`."""

from celery import shared_task

from escalation import services
from observability.tasks import sweep_task


@sweep_task("escalation.send_notifications_due")
def send_notifications_due() -> int:
    return services.send_notifications_due()


@shared_task(name="escalation.send_notification", ignore_result=True)
def send_notification(notification_id: int) -> bool:
    return services.notification_send(notification_id=notification_id)
