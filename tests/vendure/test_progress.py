from datetime import timedelta

import pytest
from django.db import transaction

from audit.models import AuditEvent
from dispatch.clock import database_now
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.fake_vendure import FakeVendure
from tests.helpers import receive_order
from tracking.selectors import tracking_link_shown
from usecases import orders as order_usecases
from vendure.models import FulfillmentReport, FulfillmentStep
from vendure.services import STEP_DELIVERED, STEP_SHIPPED, fulfillment_report, report_fulfillments_due
from vendure.tasks import report_fulfillment_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(outbound_to_loopback):
    fake = FakeVendure()
    yield fake
    fake.close()


@pytest.fixture
def assigned(shop):
    ZoneFactory()
    channel = ShopChannelFactory(admin_api_url=shop.url, admin_api_token=shop.token)
    driver = DriverFactory(name="Rosa Weber")
    return receive_order(channel, items=(("Beans", 2), ("Mug", 1))), driver


def test_pickup_and_delivery_are_reported_as_a_fulfillment(shop, assigned, django_capture_on_commit_callbacks):
    order, driver = assigned
    with django_capture_on_commit_callbacks(execute=True):
        order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    [added] = shop.mutations("addFulfillmentToOrder")
    handler = added["variables"]["input"]["handler"]
    assert handler["code"] == "manual-fulfillment"
    assert {"name": "trackingCode", "value": f"DSP-{order.pk}"} in handler["arguments"]
    # The customer's tracking link travels with the report while it works (issue 12).
    link = tracking_link_shown(order.pk)
    assert link.status == "live" and link.url.startswith("http")
    assert {"name": "method", "value": f"Dispatch driver: Rosa Weber · track: {link.url}"} in handler["arguments"]
    assert added["variables"]["input"]["lines"] == [{"orderLineId": line["id"], "quantity": line["quantity"]} for line in order.lines]
    assert added["headers"]["vendure-token"] == order.channel.token
    assert shop.fulfillments["1"]["state"] == "Shipped"
    with django_capture_on_commit_callbacks(execute=True):
        order_usecases.order_deliver(order_id=order.pk, driver=driver)
    assert shop.fulfillments["1"]["state"] == "Delivered"
    assert len(shop.mutations("addFulfillmentToOrder")) == 1
    assert list(AuditEvent.objects.filter(kind__startswith="vendure.").order_by("id").values_list("kind", flat=True)) == [
        "vendure.fulfillment_created",
        "vendure.shipped_reported",
        "vendure.delivered_reported",
    ]


def test_no_step_is_ever_sent_twice(shop, assigned):
    order, driver = assigned
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    for _ in range(3):
        fulfillment_report(order_id=order.pk, step=STEP_SHIPPED)
    fulfillment_report(order_id=order.pk, step=STEP_DELIVERED)
    fulfillment_report(order_id=order.pk, step=STEP_DELIVERED)
    assert len(shop.mutations("addFulfillmentToOrder")) == 1
    assert [c["variables"]["state"] for c in shop.mutations("transitionFulfillmentToState")] == ["Shipped", "Delivered"]


def sweep_hourly(times):
    """Run the report sweep `times` times, an hour apart by the clock it is given."""
    later = database_now()
    for _ in range(times):
        later += timedelta(hours=1)
        report_fulfillments_due(now=later)


def test_a_shop_that_is_down_is_retried_until_it_answers(shop, assigned):
    order, driver = assigned
    shop.fail_next = 3  # three 503s, then it answers
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    sweep_hourly(4)
    assert len([c for c in shop.calls if c.get("failed")]) == 3
    assert shop.fulfillments["1"]["state"] == "Shipped"
    assert FulfillmentReport.objects.get(order=order).shipped_reported_at is not None


def test_a_creation_whose_answer_was_lost_is_adopted_not_repeated(shop, assigned):
    order, driver = assigned
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    # the shop made the fulfillment but our record of it was lost (worker died before commit)
    shop._answer(
        {
            "query": "addFulfillmentToOrder",
            "variables": {
                "input": {
                    "lines": [{"orderLineId": line["id"], "quantity": line["quantity"]} for line in order.lines],
                    "handler": {"arguments": [{"name": "method", "value": "x"}, {"name": "trackingCode", "value": order.reference}]},
                }
            },
        },
        {},
    )
    fulfillment_report(order_id=order.pk, step=STEP_SHIPPED)
    assert FulfillmentReport.objects.get(order=order).fulfillment_id == "1"
    assert len(shop.fulfillments) == 1 and shop.fulfillments["1"]["state"] == "Shipped"


def test_a_refusal_is_recorded_for_ops_and_not_retried(shop, assigned):
    order, driver = assigned
    order.channel.admin_api_token = "expired-token"
    order.channel.save()
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    report_fulfillment_step.apply(args=(order.pk, STEP_SHIPPED))
    assert len(shop.calls) == 0  # unauthorised answers are not recorded as calls by the fake
    failed = AuditEvent.objects.get(kind="vendure.report_failed")
    # Recorded by Vendure's error code only: the shop's text echoed the token it was sent.
    assert failed.data["error"] == "shop refused: FORBIDDEN"
    assert FulfillmentReport.objects.get(order=order).last_error == "shop refused: FORBIDDEN"
    step = FulfillmentStep.objects.get(order=order)
    assert (step.state, step.attempts, step.next_attempt_at) == ("failed", 1, None)


def test_gives_up_after_the_last_retry_and_records_it(shop, assigned, settings):
    order, driver = assigned
    shop.fail_next = 10_000
    settings.VENDURE_REPORT_MAX_RETRIES = 2
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    sweep_hourly(6)
    assert len(shop.calls) == 3
    assert "gave up after 2 retries" in AuditEvent.objects.get(kind="vendure.report_failed").data["error"]


def test_a_channel_without_admin_api_is_skipped_and_recorded(assigned):
    order, driver = assigned
    order.channel.admin_api_url = ""
    order.channel.save()
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    assert fulfillment_report(order_id=order.pk, step=STEP_SHIPPED) == "skipped"
    assert AuditEvent.objects.filter(kind="vendure.report_skipped").exists()


def test_a_pickup_whose_task_is_lost_is_still_reported_by_the_sweep(shop, assigned, django_capture_on_commit_callbacks):
    # given a pickup whose after-commit task never ran (broker down, worker killed)
    order, driver = assigned
    with django_capture_on_commit_callbacks(execute=False):
        order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    assert shop.calls == []
    # when the sweep runs
    assert report_fulfillments_due() == 1
    # then the shop hears of it, once, and the step is closed
    assert shop.fulfillments["1"]["state"] == "Shipped"
    step = FulfillmentStep.objects.get(order=order)
    assert (step.step, step.state, step.attempts, step.next_attempt_at) == ("Shipped", "reported", 1, None)
    assert report_fulfillments_due() == 0
    assert len(shop.mutations("transitionFulfillmentToState")) == 1


def test_the_step_is_written_in_the_transaction_of_the_change(assigned):
    order, driver = assigned
    with pytest.raises(RuntimeError), transaction.atomic():
        order_usecases.order_pick_up(order_id=order.pk, driver=driver)
        assert FulfillmentStep.objects.filter(order=order, step="Shipped", state="pending").exists()
        raise RuntimeError("the pickup rolls back")
    assert not FulfillmentStep.objects.filter(order=order).exists()


def test_a_failed_attempt_waits_for_its_backoff(shop, assigned, settings):
    order, driver = assigned
    settings.VENDURE_REPORT_BACKOFF_S = 60
    shop.fail_next = 1
    order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    now = database_now()
    assert report_fulfillments_due(now=now) == 0  # the first attempt fails
    step = FulfillmentStep.objects.get(order=order)
    assert step.state == "pending" and step.last_error == "HTTP 503"
    assert report_fulfillments_due(now=now + timedelta(seconds=30)) == 0  # not due yet: no call
    assert len(shop.calls) == 1
    assert report_fulfillments_due(now=now + timedelta(seconds=90)) == 1
    assert shop.fulfillments["1"]["state"] == "Shipped"


@pytest.mark.parametrize(
    "answer",
    [
        {"addFulfillmentToOrder": None},
        {"addFulfillmentToOrder": {"__typename": "Fulfillment", "id": "x" * 65}},
        {"addFulfillmentToOrder": ["not", "an", "object"]},
        ["data", "that", "is", "a", "list"],
    ],
)
def test_a_shop_answering_outside_the_contract_fails_the_step_once_and_on_the_record(shop, assigned, django_capture_on_commit_callbacks, answer):
    # a 200 whose body is not the contract: refused (no retry for ever), recorded for ops
    order, driver = assigned
    shop._answer = lambda body, headers: answer
    with django_capture_on_commit_callbacks(execute=True):
        order_usecases.order_pick_up(order_id=order.pk, driver=driver)
    step = FulfillmentStep.objects.get(order=order, step=STEP_SHIPPED)
    assert (step.state, step.last_error) == (FulfillmentStep.State.FAILED, "shop refused: BAD_RESPONSE")
    assert AuditEvent.objects.filter(kind="vendure.report_failed", order_id=order.pk).count() == 1
    report_fulfillments_due()
    assert FulfillmentStep.objects.get(pk=step.pk).attempts == step.attempts
