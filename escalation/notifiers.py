"""The ways a team is told: a log line, email, a Slack-compatible webhook, a generic signed
webhook, PagerDuty Events API v2. Each raises on failure; the caller records and retries."""

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx
from django.conf import settings
from django.core.mail import send_mail

from escalation.models import NotificationChannel
from vendure.signing import sign

logger = logging.getLogger("escalation.notifications")


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
        send_mail(message.title, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)


def _post(url: str, *, content: bytes, headers: dict[str, str]) -> None:
    response = httpx.post(url, content=content, headers=headers, timeout=settings.ESCALATION_NOTIFIER_TIMEOUT_S)
    response.raise_for_status()


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
