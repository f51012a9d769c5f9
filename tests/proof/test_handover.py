"""Handover codes: required by a shop or zone, shown to the customer only, sent by the driver
with the delivery; wrong codes counted and, at the limit, the order escalates. And the
predicted-late trigger, which escalates an order whose arrival estimate misses its promise."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.models import Order
from escalation.models import AlertKind, Escalation
from escalation.selectors import escalations_due
from eta.models import OrderEta
from proof.models import HandoverCode
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from tracking.selectors import tracking_state
from usecases import orders as order_usecases
from usecases.reassignment import escalate_orders_due

pytestmark = pytest.mark.django_db


@pytest.fixture
def coded(settings):
    """A picked-up order of a shop that requires handover codes, its driver and their API client."""
    settings.DISPATCH_HANDOVER_MAX_ATTEMPTS = 5
    ZoneFactory()
    channel = ShopChannelFactory(requires_handover_code=True)
    driver = DriverFactory(capacity=2)
    order = receive_order(channel)
    if order.driver_id != driver.pk:
        order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=driver.user).key}")
    return Order.objects.select_related("channel", "driver").get(pk=order.pk), driver, client


def deliver(client, order, **body):
    return client.post(f"/api/v1/orders/{order.pk}/delivered/", body, format="json")


def test_the_customer_sees_the_code_while_the_order_is_under_way_and_not_after(coded):
    order, driver, client = coded
    code = HandoverCode.objects.get(order=order).code
    assert len(code) == 4 and code.isdigit()
    assert tracking_state(order, timezone.now())["handover_code"] == code
    assert deliver(client, order, handover_code=code).status_code == 200
    order.refresh_from_db()
    assert order.status == "delivered" and tracking_state(order, timezone.now())["handover_code"] is None


def test_an_order_nobody_requires_a_code_for_has_none():
    ZoneFactory()
    order = receive_order(ShopChannelFactory())
    assert not HandoverCode.objects.filter(order=order).exists()
    assert tracking_state(Order.objects.select_related("channel", "driver").get(pk=order.pk), timezone.now())["handover_code"] is None


def test_a_zone_can_require_it_too():
    ZoneFactory(requires_handover_code=True)
    order = receive_order(ShopChannelFactory())
    assert HandoverCode.objects.filter(order=order).exists()


def test_no_code_or_a_wrong_one_refuses_the_delivery_and_says_how_many_tries_are_left(coded):
    order, driver, client = coded
    missing = deliver(client, order)
    assert missing.status_code == 409 and missing.json()["code"] == "handover_code_required"
    code = HandoverCode.objects.get(order=order).code
    wrong = "0000" if code != "0000" else "1111"
    refused = deliver(client, order, handover_code=wrong)
    assert refused.status_code == 409 and refused.json()["code"] == "handover_code_wrong" and refused.json()["detail"]["attempts_left"] == 4
    order.refresh_from_db()
    assert order.status == "picked_up"
    assert AuditEvent.objects.get(kind="order.handover_code_wrong").data == {"attempts_left": 4}  # never the code


def test_at_the_limit_no_code_is_taken_and_the_order_escalates(coded):
    order, driver, client = coded
    code = HandoverCode.objects.get(order=order).code
    wrong = "0000" if code != "0000" else "1111"
    answers = [deliver(client, order, handover_code=wrong).json()["code"] for _ in range(5)]
    assert answers == ["handover_code_wrong"] * 4 + ["handover_code_locked"]
    assert deliver(client, order, handover_code=code).json()["code"] == "handover_code_locked"  # the right one, too late
    assert [d.trigger for d in escalations_due(timezone.now()) if d.order_id == order.pk] == [AlertKind.HANDOVER_CODE_FAILED]
    escalate_orders_due()
    assert Escalation.objects.get(order=order).trigger == AlertKind.HANDOVER_CODE_FAILED
    assert not [d for d in escalations_due(timezone.now()) if d.order_id == order.pk]  # once a pickup


def test_an_order_predicted_to_miss_its_promise_escalates_before_it_is_late(settings):
    settings.ESCALATION_DEFAULTS = {**settings.ESCALATION_DEFAULTS, "predicted_late_grace_s": 300}
    ZoneFactory()
    channel = ShopChannelFactory()
    now = timezone.now()
    late, on_time = receive_order(channel, code="LATE"), receive_order(channel, code="ON-TIME")  # nobody online: they wait
    driver = DriverFactory(capacity=3)
    for order, predicted_after_s in ((late, 301 + 60), (on_time, 299)):
        order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
        Order.objects.filter(pk=order.pk).update(promised_at=now + timedelta(minutes=1))
        OrderEta.objects.update_or_create(
            order=order, defaults={"vehicle": "bicycle", "source": "built_in", "at_assignment": now + timedelta(minutes=1, seconds=predicted_after_s - 60)}
        )
    due = [(d.order_code, d.trigger) for d in escalations_due(now) if d.trigger == AlertKind.ORDER_PREDICTED_LATE]
    assert due == [("LATE", AlertKind.ORDER_PREDICTED_LATE)]


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_guesses_at_once_gets_no_more_tries_than_allowed(settings, staff_groups):
    """Each try is judged under the code's row lock: twelve drivers' requests at once, all wrong,
    count five and are refused after that, never more."""
    import threading

    from django.db import connection

    from proof.errors import HandoverCodeLocked, HandoverCodeWrong
    from proof.services import handover_code_check

    settings.DISPATCH_HANDOVER_MAX_ATTEMPTS = 5
    ZoneFactory()
    order = receive_order(ShopChannelFactory(requires_handover_code=True))  # nobody online: it waits
    driver = DriverFactory(capacity=2)
    order_usecases.order_assign_manually(order_id=order.pk, driver_id=driver.pk, actor=Actor.system("test"))
    code = HandoverCode.objects.get(order=order).code
    guesses = [f"{n:04d}" for n in range(10_000) if f"{n:04d}" != code][:12]
    answers, barrier = [], threading.Barrier(len(guesses))

    def guess(wrong):
        try:
            barrier.wait()
            handover_code_check(order_id=order.pk, driver=driver, code=wrong, now=timezone.now())
        except (HandoverCodeWrong, HandoverCodeLocked) as exc:
            answers.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(g,)) for g in guesses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == sorted(["handover_code_wrong"] * 4 + ["handover_code_locked"] * 8)
    assert HandoverCode.objects.get(order=order).failed_attempts == 5
    assert AuditEvent.objects.filter(kind="order.handover_code_wrong").count() == 5
