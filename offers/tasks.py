"""Celery entry points of offers: thin wrappers over the use cases and sweeps."""

from celery import shared_task

from observability.tasks import sweep_task
from offers import services
from usecases import offers


@sweep_task("offers.expire_offers_due")
def expire_offers_due() -> int:
    return offers.expire_offers_due() + offers.offers_switched_off_due()


@shared_task(name="offers.switch_off", ignore_result=True)
def offers_switch_off() -> int:
    return offers.offers_switch_off()


@sweep_task("offers.drop_stale_sockets_due")
def drop_stale_sockets_due() -> int:
    return services.drop_stale_sockets_due()
