"""Celery entry points that run use cases: each one line. The task names are the apps' own
(`dispatch.assign_orders_due`, `offers.expire_offers_due`...), as the beat schedule and the
periodic-task pages know them; an app's own `tasks.py` holds only tasks over its own services."""

from celery import shared_task

from observability.tasks import sweep_task
from usecases import dispatching, drivers, offers, reassignment


@sweep_task("dispatch.assign_orders_due")
def assign_orders_due() -> int:
    return dispatching.assign_orders_due()


@shared_task(name="dispatch.assign_orders_for_driver", ignore_result=True)
def assign_orders_for_driver(driver_id: int) -> int:
    return dispatching.assign_orders_for_driver(driver_id=driver_id)


@sweep_task("offers.expire_offers_due")
def expire_offers_due() -> int:
    return offers.expire_offers_due() + offers.offers_switched_off_due()


@shared_task(name="offers.switch_off", ignore_result=True)
def offers_switch_off() -> int:
    return offers.offers_switch_off()


@sweep_task("availability.end_breaks_due")
def end_breaks_due() -> int:
    return drivers.end_breaks_due() + drivers.breaks_switched_off_due()


@sweep_task("availability.offline_silent_drivers_due")
def offline_silent_drivers_due() -> int:
    return drivers.offline_silent_drivers_due()


@shared_task(name="availability.breaks_end_all", ignore_result=True)
def breaks_end_all() -> int:
    return drivers.breaks_end_all(reason="switched_off")


@sweep_task("escalation.escalate_orders_due")
def escalate_orders_due() -> int:
    return reassignment.escalate_orders_due()


@shared_task(name="escalation.reassign_driver_orders", ignore_result=True)
def reassign_driver_orders(driver_id: int, reason: str) -> int:
    return reassignment.driver_orders_reassign(driver_id=driver_id, reason=reason)
