"""Push notifications for drivers without a live socket.

A backend is a class with `send(driver, title, body, data)`, chosen by the setting
DISPATCH_PUSH_BACKEND: the log backend (default), Web Push (pywebpush, with the driver's
browser subscription), or a generic signed webhook to a push gateway of your own.
"""

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from availability.selectors import driver_is_connected
from dispatch.models import Driver
from dispatch.outbound import OutboundFailed, outbound_post, outbound_post_expecting_success
from offers.models import Offer
from vendure.signing import sign

logger = logging.getLogger(__name__)


class NotificationBackend(Protocol):
    def send(self, driver: Driver, title: str, body: str, data: dict[str, Any]) -> None: ...


class LogBackend:
    """Writes the notification to the log: for development and for shops without push."""

    def send(self, driver: Driver, title: str, body: str, data: dict[str, Any]) -> None:
        logger.info("push to driver %s: %s — %s %s", driver.pk, title, body, json.dumps(data))


@dataclass(frozen=True)
class _PushServiceAnswer:
    """What pywebpush reads of an answer: the status, and no text (the body stays unread)."""

    status_code: int
    reason: str = ""
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class _OutboundSession:
    """Stands in for pywebpush's requests session, so the push service's endpoint (which the
    driver's app chose) is called through the checked outbound path like every other URL."""

    def post(self, endpoint: str, *, timeout: float | None = None, data: bytes | None = None, headers: Any = None) -> _PushServiceAnswer:
        response = outbound_post(endpoint, content=data or b"", headers=dict(headers or {}), timeout_s=min(float(timeout or 10.0), 10.0))
        return _PushServiceAnswer(status_code=response.status_code)


class WebPushBackend:
    """Web Push to the subscription the driver's app registered (needs VAPID keys)."""

    def send(self, driver: Driver, title: str, body: str, data: dict[str, Any]) -> None:
        if not driver.push_subscription:
            logger.info("driver %s has no Web Push subscription; not pushed", driver.pk)
            return
        from pywebpush import WebPushException, webpush

        try:
            webpush(
                subscription_info=driver.push_subscription,
                data=json.dumps({"title": title, "body": body, "data": data}),
                vapid_private_key=settings.DISPATCH_WEBPUSH_VAPID_PRIVATE_KEY,
                vapid_claims={"sub": settings.DISPATCH_WEBPUSH_CONTACT},
                timeout=5,
                requests_session=_OutboundSession(),  # type: ignore[arg-type]
            )
        except WebPushException as exc:
            status = getattr(exc.response, "status_code", None)
            raise OutboundFailed(f"HTTP {status}" if status else "push refused") from exc


class WebhookBackend:
    """POSTs the notification as JSON to DISPATCH_PUSH_WEBHOOK_URL, signed like our own webhooks."""

    def send(self, driver: Driver, title: str, body: str, data: dict[str, Any]) -> None:
        raw = json.dumps({"driver_id": driver.pk, "title": title, "body": body, "data": data}).encode()
        signature = sign(settings.DISPATCH_PUSH_WEBHOOK_SECRET, raw)
        outbound_post_expecting_success(
            settings.DISPATCH_PUSH_WEBHOOK_URL, content=raw, headers={"Content-Type": "application/json", "X-Dispatch-Signature": signature}, timeout_s=5
        )


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
    except OutboundFailed as exc:  # a push that fails must never fail dispatch; the state is in the API
        logger.warning("push to driver %s failed (%s): %s", driver.pk, title, exc.category)
    except Exception as exc:  # the kind only: a backend's exception text can quote its endpoint or keys
        logger.error("push to driver %s failed (%s): %s", driver.pk, title, exc.__class__.__name__)
