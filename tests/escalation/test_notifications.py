"""Notifications go out after commit through each kind of channel, are retried with backoff,
are recorded, and never hold up dispatch when a notifier fails or hangs."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.models import Order
from escalation import services
from escalation.models import AlertKind, Escalation, Notification, NotificationChannel, Team
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from tests.hook_receiver import HookReceiver
from usecases import orders as order_usecases
from vendure.signing import verify

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
OPS = Actor.system("ops-test")


@pytest.fixture(autouse=True)
def _one_trigger(settings):
    """Only the unassigned-too-long trigger fires for the stuck orders of these tests."""
    settings.ESCALATION_DEFAULTS = {**settings.ESCALATION_DEFAULTS, "no_candidates_limit_s": 10**6}


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """The test's transaction never commits: `with committed():` runs the on-commit work (the
    sending) at the end of its block, as the commit of the work in the block would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def hooks(outbound_to_loopback):
    receiver = HookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def dispatchers(ownership):
    """The team that owns stuck orders, with its default log channel switched off."""
    team = Team.objects.get(slug="dispatchers")
    team.channels.update(is_active=False)
    return team


def stuck_order(code="STUCK-1"):
    ShopChannelFactory()
    ZoneFactory()
    with time_machine.travel(T0, tick=False):
        return receive_order(ShopChannelFactory(), code=code)


def escalate(settings, committed, at=None):
    """Open the unassigned-too-long escalation of the stuck order."""
    at = at or T0 + timedelta(seconds=settings.ESCALATION_DEFAULTS["unassigned_limit_s"])
    with time_machine.travel(at, tick=False), committed():
        services.open_escalations_due(now=at)
    return Escalation.objects.get(trigger=AlertKind.ORDER_UNASSIGNED)


def test_a_slack_channel_gets_the_message_after_commit(dispatchers, hooks, settings, committed):
    dispatchers.channels.create(kind="slack", target=hooks.url)
    stuck_order("SLACK-1")
    escalation = escalate(settings, committed)
    [body] = hooks.bodies()
    assert "SLACK-1" in body["text"]
    assert f"/admin/escalation/escalation/{escalation.pk}/change/" in body["text"]
    assert "order-unassigned.md" in body["text"]
    notification = Notification.objects.get(escalation=escalation, channel_kind="slack")
    assert (notification.state, notification.attempts, notification.event) == ("sent", 1, "opened")
    sent = AuditEvent.objects.get(kind="notification.sent")
    assert (sent.order_code, sent.data["channel"], sent.data["escalation"]) == ("SLACK-1", "slack", escalation.pk)


def test_a_generic_webhook_is_signed_with_the_channel_secret(dispatchers, hooks, settings, committed):
    dispatchers.channels.create(kind="webhook", target=hooks.url, secret="hook-secret-0123456789")
    stuck_order("HOOK-1")
    escalation = escalate(settings, committed)
    [request] = hooks.requests
    verify("hook-secret-0123456789", request["headers"]["X-Dispatch-Signature"], request["body"], tolerance_s=5, now=escalation.opened_at.timestamp())
    [body] = hooks.bodies()
    assert (body["type"], body["escalation_id"], body["order_code"], body["level"]) == ("escalation.opened", escalation.pk, "HOOK-1", 1)


def test_pagerduty_gets_a_trigger_then_a_resolve_under_one_dedup_key(dispatchers, hooks, settings, committed):
    settings.PAGERDUTY_EVENTS_URL = hooks.url
    dispatchers.channels.create(kind="pagerduty", target="R0UTINGKEY")
    order = stuck_order("PD-1")
    escalation = escalate(settings, committed)
    with committed():
        order_usecases.order_assign(order_id=order.pk, driver_id=DriverFactory().pk, actor=OPS)
    trigger, resolve = hooks.bodies()
    assert trigger["routing_key"] == resolve["routing_key"] == "R0UTINGKEY"
    assert trigger["dedup_key"] == resolve["dedup_key"] == f"dispatch-escalation-{escalation.pk}"
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["payload"]["severity"] == "warning"
    assert "PD-1" in trigger["payload"]["summary"]
    assert trigger["payload"]["custom_details"]["level"] == 1


def test_email_goes_through_djangos_mail_backend(dispatchers, settings, committed):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    dispatchers.channels.create(kind="email", target="ops@example.com, lead@example.com")
    stuck_order("MAIL-1")
    escalate(settings, committed)
    [message] = mail.outbox
    assert message.to == ["ops@example.com", "lead@example.com"]
    assert "MAIL-1" in message.subject


def test_a_team_without_channels_is_told_through_the_log(dispatchers, settings, caplog, committed):
    stuck_order("LOG-1")
    escalation = escalate(settings, committed)
    notification = Notification.objects.get(escalation=escalation)
    assert (notification.channel, notification.channel_kind, notification.state) == (None, "log", "sent")
    assert "LOG-1" in caplog.text


def test_a_notifier_answering_500_is_retried_with_backoff_until_it_works(dispatchers, hooks, settings, committed):
    dispatchers.channels.create(kind="slack", target=hooks.url)
    hooks.fail_next = 2
    stuck_order("RETRY-1")
    at = T0 + timedelta(seconds=settings.ESCALATION_DEFAULTS["unassigned_limit_s"])
    with time_machine.travel(at, tick=False) as traveller:
        with committed():
            services.open_escalations_due(now=at)
        notification = Notification.objects.get(channel_kind="slack")
        assert (notification.state, notification.attempts) == ("pending", 1)
        assert notification.next_attempt_at == at + timedelta(seconds=settings.ESCALATION_NOTIFY_BACKOFF_S)
        assert notification.last_error == "HTTP 500"
        assert services.send_notifications_due() == 0  # not due yet
        traveller.shift(timedelta(seconds=settings.ESCALATION_NOTIFY_BACKOFF_S))
        assert services.send_notifications_due() == 0  # the second attempt fails too; backoff doubles
        notification.refresh_from_db()
        assert notification.attempts == 2
        assert notification.next_attempt_at == at + timedelta(seconds=3 * settings.ESCALATION_NOTIFY_BACKOFF_S)
        traveller.shift(timedelta(seconds=2 * settings.ESCALATION_NOTIFY_BACKOFF_S))
        assert services.send_notifications_due() == 1
    notification.refresh_from_db()
    assert (notification.state, notification.attempts, notification.last_error) == ("sent", 3, "")
    failures = AuditEvent.objects.filter(kind="notification.failed").order_by("id")
    assert [(e.data["attempt"], e.data["will_retry"]) for e in failures] == [(1, True), (2, True)]
    assert len(hooks.requests) == 1


def test_a_notifier_that_keeps_failing_is_given_up_on_the_record(dispatchers, hooks, settings, committed):
    settings.ESCALATION_NOTIFY_MAX_ATTEMPTS = 2
    settings.ESCALATION_NOTIFY_BACKOFF_S = 0
    dispatchers.channels.create(kind="slack", target=hooks.url)
    hooks.fail_next = 10
    stuck_order("GIVEUP-1")
    escalate(settings, committed)
    services.send_notifications_due()
    notification = Notification.objects.get(channel_kind="slack")
    assert (notification.state, notification.attempts, notification.next_attempt_at) == ("failed", 2, None)
    assert services.send_notifications_due() == 0
    last = AuditEvent.objects.filter(kind="notification.failed").latest("id")
    assert (last.data["will_retry"], last.after) == (False, {"state": "failed"})


@pytest.mark.django_db(transaction=True)
def test_a_hanging_notifier_times_out_and_never_holds_up_an_assignment(ownership, hooks, settings):
    settings.ESCALATION_NOTIFIER_TIMEOUT_S = 1.5
    hooks.hang_s = 3.0
    hooks.hang_next = 1
    Team.objects.get(slug="dispatchers").channels.create(kind="slack", target=hooks.url)
    order = stuck_order("HANG-1")
    due_at = T0 + timedelta(seconds=settings.ESCALATION_DEFAULTS["unassigned_limit_s"])

    def sweep_then_close():
        try:
            services.open_escalations_due(now=due_at)
        finally:
            connection.close()

    sweep = threading.Thread(target=sweep_then_close)
    sweep.start()
    # the escalation committed and its notification is being held by the hanging endpoint (waiting
    # for the row alone raced the assignment's own notification to the endpoint, which then hung it)
    assert hooks.hanging.wait(10)
    assert Escalation.objects.filter(order=order, trigger=AlertKind.ORDER_UNASSIGNED).exists()
    started = time.monotonic()
    order_usecases.order_assign(order_id=order.pk, driver_id=DriverFactory().pk, actor=OPS)
    assign_took = time.monotonic() - started
    assert sweep.is_alive(), "the notifier should still be waiting for the hanging endpoint"
    sweep.join(15)
    assert assign_took < 1.0
    assert Order.objects.get(pk=order.pk).status == Order.Status.ASSIGNED
    notification = Notification.objects.get(channel_kind="slack", event="opened")
    assert notification.state == "pending"
    assert notification.last_error == "timeout"


def test_notifications_made_while_the_broker_is_down_are_sent_by_the_sweep(dispatchers, hooks, settings, django_capture_on_commit_callbacks):
    dispatchers.channels.create(kind="slack", target=hooks.url)
    stuck_order("BROKER-1")
    at = T0 + timedelta(seconds=settings.ESCALATION_DEFAULTS["unassigned_limit_s"])
    with django_capture_on_commit_callbacks(execute=False):  # the enqueue after commit never happens
        services.open_escalations_due(now=at)
    assert hooks.requests == []
    assert Notification.objects.get(channel_kind="slack").state == "pending"
    assert services.send_notifications_due() == 1
    assert services.send_notifications_due() == 0
    assert len(hooks.requests) == 1


@pytest.mark.parametrize(
    ("kind", "target", "secret", "field"),
    [
        ("email", "", "", "target"),
        ("email", "not-an-address", "", "target"),
        ("slack", "ftp://example.com/hook", "", "target"),
        ("webhook", "https://example.com/hook", "short", "secret"),
        ("pagerduty", "", "", "target"),
    ],
)
def test_a_channel_with_a_bad_target_is_refused(ownership, kind, target, secret, field):
    channel = NotificationChannel(team=Team.objects.get(slug="on-call"), kind=kind, target=target, secret=secret)
    with pytest.raises(ValidationError) as refused:
        channel.full_clean()
    assert field in refused.value.message_dict
