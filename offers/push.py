"""Push notifications for drivers without a live socket.

A backend is a class with `send(driver, title, body, data)`, chosen by the setting
DISPATCH_PUSH_BACKEND: the log backend (default), Web Push (pywebpush, with the driver's
browser subscription), or a generic signed webhook to a push gateway of your own.
"""

import json
import logging
from typing import Any, Protocol

import httpx
from django.conf import settings
from django.utils.module_loading import import_string

from dispatch.models import Driver
from offers.models import Offer
from offers.selectors import driver_is_connected
from vendure.signing import sign

logger = logging.getLogger(__name__)


class NotificationBackend(Protocol):
    def send(self, driver: Driver, title: str, body: str, data: dict[str, Any]) -> None: ...


class LogBackend:
    """Writes the notification to the log: for development and for shops without push."""

    def send(self, driver: Driver, title: str, body: str, data: dict[str, Any]) -> None:
        logger.info("push to driver %s: %s — %s %s", driver.pk, title, body, json.dumps(data))


class WebPushBackend:
    """Web Push to the subscription the driver's app registered (needs VAPID keys)."""

    def send(self, driver: Driver, title: str, body: str, data: dict[str, Any]) -> None:
        if not driver.push_subscription:
            logger.info("driver %s has no Web Push subscription; not pushed", driver.pk)
            return
        from pywebpush import webpush

        webpush(
            subscription_info=driver.push_subscription,
            data=json.dumps({"title": title, "body": body, "data": data}),
            vapid_private_key=settings.DISPATCH_WEBPUSH_VAPID_PRIVATE_KEY,
            vapid_claims={"sub": settings.DISPATCH_WEBPUSH_CONTACT},
            timeout=5,
        )


class WebhookBackend:
    """POSTs the notification as JSON to DISPATCH_PUSH_WEBHOOK_URL, signed like our own webhooks."""

    def send(self, driver: Driver, title: str, body: str, data: dict[str, Any]) -> None:
        raw = json.dumps({"driver_id": driver.pk, "title": title, "body": body, "data": data}).encode()
        signature = sign(settings.DISPATCH_PUSH_WEBHOOK_SECRET, raw)
        httpx.post(
            settings.DISPATCH_PUSH_WEBHOOK_URL,
            content=raw,
            headers={"Content-Type": "application/json", "X-Dispatch-Signature": signature},
            timeout=5,
        ).raise_for_status()


def backend() -> NotificationBackend:
    return import_string(settings.DISPATCH_PUSH_BACKEND)()  # type: ignore[no-any-return]


def push_if_not_connected(offer: Offer) -> None:
    push_to_driver_if_not_connected(
        offer.driver,
        "New delivery offer",
        f"{offer.order.item_summary or offer.order.code}: answer by {offer.expires_at:%H:%M:%S}",
        {"offer_id": offer.pk, "expires_at": offer.expires_at.isoformat()},
    )


def push_to_driver_if_not_connected(driver: Driver, title: str, body: str, data: dict[str, Any]) -> None:
    if driver_is_connected(driver.pk):
        return
    try:
        backend().send(driver, title, body, data)
    except Exception:  # a push that fails must never fail dispatch; the state is in the API
        logger.exception("push to driver %s failed (%s)", driver.pk, title)
