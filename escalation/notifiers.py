"""The ways a team is told: a log line, email, a Slack-compatible webhook, a generic signed
webhook, PagerDuty Events API v2. Each raises NotifierFailed on failure, whose text is only
the kind of failure; the caller records it and retries."""

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from django.conf import settings
from django.core.mail import send_mail

from dispatch.outbound import OutboundFailed, outbound_post_expecting_success
from escalation.models import NotificationChannel
from vendure.signing import sign

logger = logging.getLogger("escalation.notifications")


class NotifierFailed(Exception):
    """A notification did not go out; the text is a category ("timeout", "HTTP 500"), never
    an exception's text, which can hold a channel's URL, key or an answer's body."""


@dataclass(frozen=True)
class AlertMessage:
    """What every channel says about one step of one escalation."""

    escalation_id: int
    event: str  # opened, raised, resolved
    trigger: str
    trigger_label: str
    level: int
    order_id: int
    order_code: str
    zone: str
    summary: str
    admin_url: str
    runbook: str

    @property
    def title(self) -> str:
        prefix = {"opened": "Escalation", "raised": f"Escalated to L{self.level}", "resolved": "Resolved"}.get(self.event, self.event)
        return f"[{prefix}] {self.trigger_label}: order {self.order_code} ({self.zone})"


class Notifier(Protocol):
    def send(self, channel: NotificationChannel | None, message: AlertMessage) -> None: ...


class LogNotifier:
    def send(self, channel: NotificationChannel | None, message: AlertMessage) -> None:
        logger.warning("%s", message.title, extra={"alert": asdict(message)})


class EmailNotifier:
    def send(self, channel: NotificationChannel | None, message: AlertMessage) -> None:
        assert channel is not None
        recipients = [a.strip() for a in channel.target.split(",") if a.strip()]
        body = (
            f"{message.summary}\n\nOrder: {message.order_code}\nZone: {message.zone}\nLevel: L{message.level}\n\n"
            f"Open: {message.admin_url}\nRunbook: {message.runbook}\n"
        )
        try:
            send_mail(message.title, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
        except Exception as exc:  # SMTP errors quote addresses and server replies: keep the kind only
            raise NotifierFailed(f"email: {exc.__class__.__name__}") from exc


def _post(url: str, *, content: bytes, headers: dict[str, str]) -> None:
    try:
        outbound_post_expecting_success(url, content=content, headers=headers, timeout_s=settings.ESCALATION_NOTIFIER_TIMEOUT_S)
    except OutboundFailed as exc:
        raise NotifierFailed(exc.category) from exc


class SlackNotifier:
    """Slack's incoming webhook format ({"text": ...}), which Mattermost and others accept too."""

    def send(self, channel: NotificationChannel | None, message: AlertMessage) -> None:
        assert channel is not None
        text = f"*{message.title}*\n{message.summary}\n<{message.admin_url}|Open in the ops console> · <{message.runbook}|Runbook>"
        _post(channel.target, content=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"})


class WebhookNotifier:
    """The message as JSON, signed like the shop webhooks: X-Dispatch-Signature t=...,v1=..."""

    def send(self, channel: NotificationChannel | None, message: AlertMessage) -> None:
        assert channel is not None
        raw = json.dumps({"type": f"escalation.{message.event}", "title": message.title, **asdict(message)}).encode()
        _post(channel.target, content=raw, headers={"Content-Type": "application/json", "X-Dispatch-Signature": sign(channel.secret, raw)})


class PagerDutyNotifier:
    """PagerDuty Events API v2: trigger on open and raise, resolve on resolution, one incident
    per escalation through its dedup key."""

    def send(self, channel: NotificationChannel | None, message: AlertMessage) -> None:
        assert channel is not None
        event: dict[str, Any] = {
            "routing_key": channel.target,
            "event_action": "resolve" if message.event == "resolved" else "trigger",
            "dedup_key": f"dispatch-escalation-{message.escalation_id}",
        }
        if message.event != "resolved":
            event["payload"] = {
                "summary": message.title[:1024],
                "source": settings.DISPATCH_PUBLIC_URL,
                "severity": "critical" if message.level >= 3 else "error" if message.level == 2 else "warning",
                "component": message.zone,
                "group": message.trigger,
                "class": "escalation",
                "custom_details": {"summary": message.summary, "order": message.order_code, "level": message.level, "runbook": message.runbook},
            }
            event["links"] = [{"href": message.admin_url, "text": "Ops console"}]
        _post(settings.PAGERDUTY_EVENTS_URL, content=json.dumps(event).encode(), headers={"Content-Type": "application/json"})


NOTIFIERS: dict[str, Notifier] = {
    NotificationChannel.Kind.LOG: LogNotifier(),
    NotificationChannel.Kind.EMAIL: EmailNotifier(),
    NotificationChannel.Kind.SLACK: SlackNotifier(),
    NotificationChannel.Kind.WEBHOOK: WebhookNotifier(),
    NotificationChannel.Kind.PAGERDUTY: PagerDutyNotifier(),
}
