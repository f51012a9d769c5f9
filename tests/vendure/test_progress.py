import pytest

from audit.models import AuditEvent
from dispatch import services
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.fake_vendure import FakeVendure
from tests.helpers import receive_order
from vendure.models import FulfillmentReport
from vendure.services import STEP_DELIVERED, STEP_SHIPPED, fulfillment_report
from vendure.tasks import report_fulfillment_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def retries_run_in_place():
    """Eager retries run inside apply() only when errors are not propagated straight away."""
    from dispatch.celery import app

    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True


@pytest.fixture
def shop():
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
        services.order_pick_up(order_id=order.pk, driver=driver)
    [added] = shop.mutations("addFulfillmentToOrder")
    handler = added["variables"]["input"]["handler"]
    assert handler["code"] == "manual-fulfillment"
    assert {"name": "trackingCode", "value": f"DSP-{order.pk}"} in handler["arguments"]
    assert {"name": "method", "value": "Dispatch driver: Rosa Weber"} in handler["arguments"]
    assert added["variables"]["input"]["lines"] == [{"orderLineId": line["id"], "quantity": line["quantity"]} for line in order.lines]
    assert added["headers"]["vendure-token"] == order.channel.token
    assert shop.fulfillments["1"]["state"] == "Shipped"
    with django_capture_on_commit_callbacks(execute=True):
        services.order_deliver(order_id=order.pk, driver=driver)
    assert shop.fulfillments["1"]["state"] == "Delivered"
    assert len(shop.mutations("addFulfillmentToOrder")) == 1
    assert list(AuditEvent.objects.filter(kind__startswith="vendure.").order_by("id").values_list("kind", flat=True)) == [
        "vendure.fulfillment_created",
        "vendure.shipped_reported",
        "vendure.delivered_reported",
    ]


def test_no_step_is_ever_sent_twice(shop, assigned):
    order, driver = assigned
    services.order_pick_up(order_id=order.pk, driver=driver)
    for _ in range(3):
        fulfillment_report(order_id=order.pk, step=STEP_SHIPPED)
    fulfillment_report(order_id=order.pk, step=STEP_DELIVERED)
    fulfillment_report(order_id=order.pk, step=STEP_DELIVERED)
    assert len(shop.mutations("addFulfillmentToOrder")) == 1
    assert [c["variables"]["state"] for c in shop.mutations("transitionFulfillmentToState")] == ["Shipped", "Delivered"]


def test_a_shop_that_is_down_is_retried_until_it_answers(shop, assigned, retries_run_in_place):
    order, driver = assigned
    shop.fail_next = 3  # three 503s, then it answers
    services.order_pick_up(order_id=order.pk, driver=driver)
    report_fulfillment_step.apply(args=(order.pk, STEP_SHIPPED))  # eager: retries run in place
    assert len([c for c in shop.calls if c.get("failed")]) == 3
    assert shop.fulfillments["1"]["state"] == "Shipped"
    assert FulfillmentReport.objects.get(order=order).shipped_reported_at is not None


def test_a_creation_whose_answer_was_lost_is_adopted_not_repeated(shop, assigned):
    order, driver = assigned
    services.order_pick_up(order_id=order.pk, driver=driver)
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
    services.order_pick_up(order_id=order.pk, driver=driver)
    report_fulfillment_step.apply(args=(order.pk, STEP_SHIPPED))
    assert len(shop.calls) == 0  # unauthorised answers are not recorded as calls by the fake
    failed = AuditEvent.objects.get(kind="vendure.report_failed")
    assert "not currently authorized" in failed.data["error"]
    assert "not currently authorized" in FulfillmentReport.objects.get(order=order).last_error


def test_gives_up_after_the_last_retry_and_records_it(shop, assigned, settings, retries_run_in_place):
    order, driver = assigned
    shop.fail_next = 10_000
    services.order_pick_up(order_id=order.pk, driver=driver)
    report_fulfillment_step.max_retries = 2
    try:
        report_fulfillment_step.apply(args=(order.pk, STEP_SHIPPED))
    finally:
        report_fulfillment_step.max_retries = settings.VENDURE_REPORT_MAX_RETRIES
    assert len(shop.calls) == 3
    assert "gave up after 2 retries" in AuditEvent.objects.get(kind="vendure.report_failed").data["error"]


def test_a_channel_without_admin_api_is_skipped_and_recorded(assigned):
    order, driver = assigned
    order.channel.admin_api_url = ""
    order.channel.save()
    services.order_pick_up(order_id=order.pk, driver=driver)
    assert fulfillment_report(order_id=order.pk, step=STEP_SHIPPED) == "skipped"
    assert AuditEvent.objects.filter(kind="vendure.report_skipped").exists()
