"""A tracking link per order, made at intake: in the webhook's answer, stored only as a hash."""

import hashlib

import pytest

from audit.models import AuditEvent
from tests.helpers import json_body, post_webhook, ready_event
from tests.tracking.conftest import token_of, webhook_order
from tracking.models import TrackingLink
from tracking.selectors import tracking_link_shown
from vendure import sample_payloads

pytestmark = pytest.mark.django_db


def test_the_webhooks_answer_carries_an_absolute_tracking_url_with_a_long_random_token(client, shop, settings):
    settings.DISPATCH_PUBLIC_URL = "https://dispatch.example.com/"
    order, body = webhook_order(client, shop)
    url = body["tracking_url"]
    assert url.startswith("https://dispatch.example.com/t/") and url.endswith("/")
    token = token_of(url)
    assert len(token) == 32  # 24 bytes of base64url: 192 bits
    other_order, other = webhook_order(client, shop)
    assert token_of(other["tracking_url"]) != token


def test_only_the_tokens_hash_is_stored(client, shop):
    order, body = webhook_order(client, shop)
    token = token_of(body["tracking_url"])
    link = TrackingLink.objects.get(order=order)
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = " ".join(str(value) for value in TrackingLink.objects.filter(pk=link.pk).values_list().get())
    assert token not in stored
    assert not AuditEvent.objects.filter(data__icontains=token).exists()


def test_a_repeated_order_answers_with_the_same_link_and_a_cancellation_with_none(client, shop):
    event = ready_event(vendure_id="V-REPEAT")
    first = json_body(post_webhook(client, shop, event))
    again = json_body(post_webhook(client, shop, {**event, "id": "another-event-id"}))
    assert again["outcome"] == "duplicate_order" and again["tracking_url"] == first["tracking_url"]
    cancelled = sample_payloads.event("order.cancelled", {"id": "V-REPEAT", "code": event["order"]["code"]})
    body = json_body(post_webhook(client, shop, cancelled))
    assert body["outcome"] == "order_cancelled" and "tracking_url" not in body


def test_staff_see_the_link_and_a_changed_key_kills_it(client, shop, settings):
    order, body = webhook_order(client, shop)
    shown = tracking_link_shown(order.pk)
    assert (shown.status, shown.url) == ("live", body["tracking_url"])
    settings.DISPATCH_TRACKING_KEY = "a-new-key-after-a-leak"
    assert tracking_link_shown(order.pk).status == "unusable"
    assert client.get(f"/t/{token_of(body['tracking_url'])}/").status_code == 404
