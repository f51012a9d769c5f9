"""`/t/<token>/` and its JSON: what a customer sees, what they never see, and who gets nothing."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.models import Driver, Order
from tests.factories import ShopChannelFactory, staff_member
from tests.tracking.conftest import carry, token_of, webhook_order
from tracking.services import tracking_link_revoke
from usecases import orders as order_usecases

pytestmark = pytest.mark.django_db


def page(client, token, address, suffix=""):
    return client.get(f"/t/{token}/{suffix}", REMOTE_ADDR=address)


def state(client, token, address):
    response = page(client, token, address, "state.json")
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def test_a_waiting_order_shows_the_shop_the_code_and_its_first_step(client, received, address):
    order, token = received
    response = page(client, token, address)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Kaffeerösterei Mitte" in html and order.code in html and "Order received" in html
    assert response["Referrer-Policy"] == "no-referrer" and "noindex" in response["X-Robots-Tag"]
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    body = state(client, token, address)
    assert body["status"] == "received" and body["driver"] is None and body["position"] is None
    assert [step["step"] for step in body["steps"] if step["is_done"]] == ["received"]


def test_the_driver_is_shown_only_while_carrying_it_and_never_their_phone_or_the_customers_details(client, received, address):
    order, token = received
    driver = carry(order)
    response = page(client, token, address)
    html = response.content.decode()
    body = state(client, token, address)
    assert body["driver"] == {"first_name": "Rosa", "vehicle": "Scooter"}
    assert body["position"]["is_stale"] is False and (body["position"]["lat"], body["position"]["lon"]) == (52.51, 13.39)
    assert body["dropoff"]["point"] == {"lat": 52.52, "lon": 13.4}
    for private in (
        driver.phone,
        "Weber",
        order.customer_name,
        order.customer_phone,
        order.customer_email,
        order.dropoff_address["city"],
        order.dropoff_postal_code,
    ):
        assert private and private not in html and private not in json.dumps(body), private
    assert order.dropoff_address["streetLine1"] in html


def test_no_position_before_pickup(client, received, address):
    order, token = received
    driver = carry(order)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.ASSIGNED, picked_up_at=None)
    body = state(client, token, address)
    assert body["status"] == "assigned" and body["driver"]["first_name"] == "Rosa"
    assert body["position"] is None
    assert Driver.objects.get(pk=driver.pk).last_lat is not None  # the driver has one: it is not shown


def test_a_position_older_than_the_stale_limit_is_shown_as_not_updated(client, received, address, settings):
    settings.DISPATCH_TRACKING_POSITION_STALE_S = 120
    order, token = received
    carry(order, position_age_s=300)
    body = state(client, token, address)
    assert body["position"]["is_stale"] is True and "lat" not in body["position"] and "lon" not in body["position"]


def test_after_delivery_the_outcome_shows_and_the_position_does_not(client, received, address):
    order, token = received
    driver = carry(order)
    order_usecases.order_deliver(order_id=order.pk, driver=driver, proof_photo_ref="photos/1.jpg")
    body = state(client, token, address)
    assert body["status"] == "delivered" and body["is_ended"] and body["position"] is None and body["dropoff"]["point"] is None
    assert body["outcome"]["words"] == "Delivered" and body["outcome"]["proof"] == {"has_photo": True, "has_signature": False, "has_note": False}
    assert "Proof of delivery: a photo at the door." in page(client, token, address).content.decode()


def test_a_cancelled_order_says_who_cancelled_in_plain_words_and_keeps_an_ops_note_internal(client, received, address):
    order, token = received
    order_usecases.order_cancel(order_id=order.pk, actor=Actor.system("ops"), reason="customer was rude on the phone")
    body = state(client, token, address)
    assert body["outcome"]["reason"] == "Our dispatch team cancelled this delivery."
    assert "rude" not in page(client, token, address).content.decode()


def test_the_link_ends_a_day_after_the_delivery(client, received, address, settings):
    settings.DISPATCH_TRACKING_LINK_TTL_H = 24
    order, token = received
    driver = carry(order)
    order_usecases.order_deliver(order_id=order.pk, driver=driver)
    with time_machine.travel(timezone.now() + timedelta(hours=23)):
        assert page(client, token, address).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        response = page(client, token, address)
        assert response.status_code == 410 and "This delivery has ended" in response.content.decode()
        assert page(client, token, address, "state.json").status_code == 410


def test_an_unknown_or_malformed_token_is_a_friendly_404(client, shop, address):
    for token in ("A" * 32, "short", "x" * 200, "%3Cscript%3E", "a.b"):
        response = page(client, token, address)
        assert response.status_code == 404, token
        assert "find this tracking link" in response.content.decode()


def test_staff_withdraw_a_link_audited_and_it_answers_410(client, received, address, staff_groups):
    order, token = received
    ops = staff_member("ops")
    client.force_login(ops)
    response = client.post(
        "/admin/dispatch/order/", {"action": "revoke_tracking_link", "_selected_action": [order.pk], "apply": "1", "reason": "sent to the wrong customer"}
    )
    assert response.status_code == 302
    client.logout()
    response = page(client, token, address)
    assert response.status_code == 410 and "withdrawn" in response.content.decode()
    event = AuditEvent.objects.get(kind="tracking.link_revoked")
    assert event.order_id == order.pk and event.actor_label == ops.username and event.data["reason"] == "sent to the wrong customer"
    assert tracking_link_revoke(order_id=order.pk, reason="again", actor=Actor.system("test"), now=timezone.now()) is False


def test_support_cannot_withdraw_a_link(client, received, address, staff_groups):
    order, token = received
    client.force_login(staff_member("support"))
    response = client.post("/admin/dispatch/order/", {"action": "revoke_tracking_link", "_selected_action": [order.pk], "apply": "1", "reason": "x"})
    assert response.status_code in (200, 302, 403)  # the action is not theirs: the list again, or refused
    client.logout()
    assert page(client, token, address).status_code == 200
    assert not AuditEvent.objects.filter(kind="tracking.link_revoked").exists()


def test_guessing_is_rate_limited_per_client_address(client, received, address, settings):
    settings.DISPATCH_TRACKING_MISSES_PER_MINUTE = 5
    order, token = received
    for n in range(5):
        assert page(client, f"{n:032d}", address).status_code == 404
    limited = page(client, "0" * 32, address)
    assert limited.status_code == 429 and limited["Retry-After"] == "60"
    assert page(client, token, "192.0.2.77").status_code == 200  # another address is not held back


def test_every_lookup_counts_against_the_address(client, received, address, settings):
    settings.DISPATCH_TRACKING_LOOKUPS_PER_MINUTE = 3
    order, token = received
    assert [page(client, token, address, "state.json").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_what_a_shop_sends_is_shown_as_text_never_as_markup(client, address, db):
    from tests.factories import ZoneFactory

    ZoneFactory()
    shop = ShopChannelFactory(token="evil-shop", name='<img src=x onerror="alert(1)">Shop')
    order, body = webhook_order(client, shop, code='<script>alert("code")</script>', lat=52.52, lon=13.40)
    html = page(client, token_of(body["tracking_url"]), address).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert" in html and "&lt;img src=x" in html
    # The state for the script travels in a JSON data block, its markup characters escaped.
    data_block = html.split('id="tracking-state"', 1)[1].split("</script>", 1)[0]
    assert "<" not in data_block.split(">", 1)[1]


def test_while_on_the_way_the_page_shows_an_arrival_window_and_how_sure_it_is(client, received, address):
    order, token = received
    assert state(client, token, address)["eta"] is None  # nobody holds it yet
    carry(order)
    eta = state(client, token, address)["eta"]
    assert eta["earliest"] < eta["latest"] and "too few deliveries" in eta["confidence_words"]
    html = page(client, token, address).content.decode()
    assert "Arriving" in html and "too few deliveries" in html


def test_before_pickup_the_arrival_is_the_one_kept_at_assignment_not_a_live_one(client, received, address):
    """A live estimate before pickup would tell the customer, poll after poll, where the driver is."""
    from tests.tracking.conftest import assign

    order, token = received
    driver = assign(order)
    first = state(client, token, address)["eta"]
    Driver.objects.filter(pk=driver.pk).update(last_lat=52.40, last_lon=13.10, last_position_at=timezone.now())  # far away now
    assert state(client, token, address)["eta"] == first
