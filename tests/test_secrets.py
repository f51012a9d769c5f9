"""A secret never leaves where it is kept.

A recognisable secret is planted in every configurable place (a shop's webhook secret and
Admin API token, each escalation channel's target and secret, the push gateway's secret and
URL token, the metrics token, a driver's API token); the flows that use each run, through
the services staff use, with the outside parties failing and echoing what they were sent;
then every audit event, log line (as caplog sees it and as the JSON handler writes it),
recorded failure, CSV export and answer is searched for the planted strings.
"""

import io
import json
import logging
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework.authtoken.models import Token

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch import services as dispatch_services
from dispatch.models import ShopChannel
from escalation import services as escalation_services
from escalation.models import Notification, NotificationChannel, Team
from observability.models import SweepRun
from offers.push import push_to_driver_if_not_connected
from tests.factories import DriverFactory, ZoneFactory, staff_member
from tests.fake_vendure import FakeVendure
from tests.helpers import post_webhook, ready_event, receive_order
from tests.hook_receiver import HookReceiver
from usecases import orders as order_usecases
from vendure.models import FulfillmentReport, FulfillmentStep
from vendure.services import report_fulfillments_due

pytestmark = pytest.mark.django_db

STAFF = Actor.system("ops-test")


def planted(place, length=None):
    value = f"PLANTED-SECRET-1f3a-{place}"
    return value if length is None else value[:length].ljust(length, "0")


WEBHOOK_SECRET = planted("shop-webhook-secret")
ADMIN_API_TOKEN = planted("shop-admin-api-token")
SLACK_PATH = planted("slack-target")
HOOK_PATH = planted("webhook-target")
HOOK_SECRET = planted("webhook-secret")
PAGERDUTY_KEY = planted("pagerduty-routing-key")
PUSH_SECRET = planted("push-webhook-secret")
PUSH_URL_TOKEN = planted("push-url-token")
METRICS_TOKEN = planted("metrics-token")
DRIVER_TOKEN = planted("driver-token", 40)  # a DRF token key is 40 characters
ALL_SECRETS = [WEBHOOK_SECRET, ADMIN_API_TOKEN, SLACK_PATH, HOOK_PATH, HOOK_SECRET, PAGERDUTY_KEY, PUSH_SECRET, PUSH_URL_TOKEN, METRICS_TOKEN, DRIVER_TOKEN]


@pytest.fixture
def json_log():
    """What the configured JSON handler writes, for every logger, at every level."""
    stream = io.StringIO()
    config = django_settings.LOGGING
    formatter_config = dict(config["formatters"]["json"])
    formatter = import_string(formatter_config.pop("()"))(**formatter_config)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(import_string(config["filters"]["correlation_id"]["()"])())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


@pytest.fixture
def outside(outbound_to_loopback):
    """A shop and a hook endpoint that fail, the shop echoing the credentials it gets."""
    shop = FakeVendure(token="the-right-token")
    hooks = HookReceiver()
    hooks.fail_next = 10_000
    yield shop, hooks
    shop.close()
    hooks.close()


def test_no_planted_secret_leaves_where_it_is_kept(outside, json_log, caplog, settings, ownership, staff_groups, capsys):
    shop, hooks = outside
    caplog.set_level(logging.DEBUG)
    answers = []
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.PAGERDUTY_EVENTS_URL = hooks.url
    settings.DISPATCH_PUSH_BACKEND = "offers.push.WebhookBackend"
    settings.DISPATCH_PUSH_WEBHOOK_URL = f"{hooks.url}?token={PUSH_URL_TOKEN}"
    settings.DISPATCH_PUSH_WEBHOOK_SECRET = PUSH_SECRET
    client = Client()

    # given a shop channel registered by the command, then edited as the admin form does
    call_command(
        "create_shop_channel",
        *["--token", "shop-1", "--name", "Shop", "--secret", "not-yet-the-secret-0", "--pickup", "52.5,13.4"],
        *["--admin-api-url", shop.url, "--admin-api-token", "not-yet-the-token"],
    )
    call_command(
        "create_shop_channel",
        *["--token", "shop-1", "--name", "Shop", "--secret", WEBHOOK_SECRET, "--pickup", "52.5,13.4"],
        *["--admin-api-url", shop.url, "--admin-api-token", ADMIN_API_TOKEN],
    )
    channel = ShopChannel.objects.get(token="shop-1")
    channel.webhook_secret = WEBHOOK_SECRET + "-rotated"
    channel.admin_api_token = ADMIN_API_TOKEN + "-rotated"
    dispatch_services.reference_data_save(instance=channel, changed_fields=["webhook_secret", "admin_api_token"], is_new=False, actor=STAFF)
    channel.webhook_secret, channel.admin_api_token = WEBHOOK_SECRET, ADMIN_API_TOKEN
    dispatch_services.reference_data_save(instance=channel, changed_fields=["webhook_secret", "admin_api_token"], is_new=False, actor=STAFF)
    answers.append(capsys.readouterr().out)

    # and escalation channels added as the team's admin page does
    team = Team.objects.get(slug="dispatchers")
    for kind, target, secret in [
        ("slack", f"{hooks.url}/{SLACK_PATH}", ""),
        ("webhook", f"{hooks.url}/{HOOK_PATH}", HOOK_SECRET),
        ("pagerduty", PAGERDUTY_KEY, ""),
    ]:
        dispatch_services.reference_data_save(
            instance=NotificationChannel(team=team, kind=kind, target=target, secret=secret),
            changed_fields=["kind", "target", "secret"],
            is_new=True,
            actor=STAFF,
        )
    slack = team.channels.get(kind="slack")
    slack.target = f"{hooks.url}/{SLACK_PATH}/rotated"
    dispatch_services.reference_data_save(instance=slack, changed_fields=["target"], is_new=False, actor=STAFF)

    # when the shop sends signed webhooks (one good, one with a wrong signature)
    ZoneFactory()
    answers.append(post_webhook(client, channel, ready_event(code="SECRET-1")).content.decode())
    answers.append(post_webhook(client, channel, ready_event(code="SECRET-2"), secret="a-wrong-secret-0123456789").content.decode())
    # and a driver with a planted token fetches and picks up an order, and one with a wrong token tries
    driver = DriverFactory()
    Token.objects.create(user=driver.user, key=DRIVER_TOKEN)
    order = receive_order(channel, code="SECRET-3")
    if order.driver_id is None:
        order_usecases.order_assign(order_id=order.pk, driver_id=driver.pk, actor=STAFF)
    for path in ("/api/v1/orders/", f"/api/v1/orders/{order.pk}/picked-up/"):
        method = client.get if path.endswith("orders/") else client.post
        answers.append(method(path, HTTP_AUTHORIZATION=f"Token {DRIVER_TOKEN}").content.decode())
    answers.append(client.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Token {DRIVER_TOKEN[:-1]}x").content.decode())
    # and the shop refuses the report of that pickup, echoing the token it was sent
    report_fulfillments_due()
    # and an escalation tells every channel, each of which fails
    later = timezone.now() + timedelta(hours=2)
    with time_machine.travel(later, tick=False):
        escalation_services.open_escalations_due(now=later)
        escalation_services.send_notifications_due()
    # and a push to a driver without a socket fails
    push_to_driver_if_not_connected(driver, "New delivery offer", "body", {"offer_id": 1})
    # and the scraper, and someone guessing, ask for /metrics
    answers.append(client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}x").content.decode())
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 200
    # and support exports the audit trail
    support = Client()
    support.force_login(staff_member("support"))
    export = support.get("/support/export.csv")
    assert export.status_code == 200
    answers.append(b"".join(export.streaming_content).decode())

    # then the flows did run, and failed where they should
    assert FulfillmentStep.objects.get(order=order).state == "failed"
    assert set(Notification.objects.exclude(last_error="").values_list("channel_kind", flat=True)) == {"slack", "webhook", "pagerduty"}
    assert AuditEvent.objects.filter(kind="shopchannel.updated").exists() and AuditEvent.objects.filter(kind="notificationchannel.created").count() == 3
    # and no planted secret is in any output
    outputs = {
        "audit events": json.dumps(list(AuditEvent.objects.values()), default=str),
        "caplog": caplog.text + json.dumps([record.__dict__ for record in caplog.records], default=str),
        "JSON log": json_log.getvalue(),
        "notification failures": json.dumps(list(Notification.objects.values_list("last_error", flat=True))),
        "report failures": json.dumps(
            list(FulfillmentReport.objects.values_list("last_error", flat=True)) + list(FulfillmentStep.objects.values_list("last_error", flat=True))
        ),
        "sweep runs": json.dumps(list(SweepRun.objects.values_list("last_error", flat=True))),
        "answers and exports": "\n".join(answers),
    }
    leaks = {where: [secret for secret in ALL_SECRETS if secret in text] for where, text in outputs.items()}
    assert leaks == {where: [] for where in outputs}
