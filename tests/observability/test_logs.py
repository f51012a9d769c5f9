"""Logs are JSON lines, each with the correlation id of its request, socket message or task, so
one id finds every line of one order's story."""

import io
import json
import logging

import pytest
from asgiref.sync import async_to_sync

from audit.models import AuditEvent
from dispatch.models import Order
from offers.models import Offer
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import post_webhook, ready_event, receive_order
from tests.offers.test_consumer import connect, receive, send, token_for

pytestmark = pytest.mark.django_db(transaction=True)


class JsonLog:
    """What the configured console handler writes (its formatter and filters), kept in memory."""

    def __init__(self):
        [console] = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(console.formatter)
        for log_filter in console.filters:
            self.handler.addFilter(log_filter)

    def readouterr(self):
        """Every line so far, parsed (each one must be JSON), and start afresh."""
        text, self.stream = self.stream.getvalue(), io.StringIO()
        self.handler.setStream(self.stream)
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def json_log():
    log = JsonLog()
    logging.getLogger().addHandler(log.handler)
    yield log
    logging.getLogger().removeHandler(log.handler)


def test_every_line_of_a_webhook_request_carries_its_request_id(client, json_log):
    ZoneFactory()
    channel = ShopChannelFactory()
    json_log.readouterr()
    response = post_webhook(client, channel, ready_event(code="LOG-1"), headers={"X-Request-ID": "req-abc-123"})
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-abc-123"
    story = [line for line in json_log.readouterr() if line.get("order_code") == "LOG-1"]
    assert [line["event"] for line in story] == ["order.received", "dispatch.decided", "order.unassigned", "order.out_of_candidates"]
    assert {line["correlation_id"] for line in story} == {"req-abc-123"}
    assert {line["level"] for line in story} == {"INFO"}
    assert all(line["logger"] == "audit.events" and line["time"] for line in story)


def test_a_refused_webhook_logs_a_warning_with_the_request_id(client, json_log):
    channel = ShopChannelFactory()
    json_log.readouterr()
    post_webhook(client, channel, ready_event(code="LOG-2"), secret="not-the-secret-at-all", headers={"X-Request-ID": "req-refused-1"})
    [line] = [line for line in json_log.readouterr() if line["logger"] == "vendure.views"]
    assert (line["level"], line["correlation_id"]) == ("WARNING", "req-refused-1")
    assert "webhook refused" in line["message"]


def test_a_socket_message_has_its_own_id_in_its_log_lines_and_audit_events(json_log, v2_offers_on, v2_availability_on, v2_driver):
    ZoneFactory()
    driver = v2_driver()
    order = receive_order(ShopChannelFactory(), code="LOG-3")
    offer = Offer.objects.get(order=order)
    token = token_for(driver)
    json_log.readouterr()

    async def accept():
        socket = await connect(token)
        reply = await send(socket, {"type": "accept", "id": "a1", "offer_id": offer.pk})
        while reply.get("id") != "a1":
            reply = await receive(socket)
        await socket.disconnect()

    async_to_sync(accept)()
    assert Order.objects.get(pk=order.pk).driver_id == driver.pk
    accepted = AuditEvent.objects.get(kind="offer.accepted")
    lines = [line for line in json_log.readouterr() if line.get("order_code") == "LOG-3"]
    assert {line["event"] for line in lines} >= {"order.assigned", "offer.accepted"}
    assert {line["correlation_id"] for line in lines} == {accepted.correlation_id}
    assert AuditEvent.objects.get(kind="order.assigned").correlation_id == accepted.correlation_id


def test_a_tasks_lines_carry_the_tasks_id_as_its_audit_events_do(json_log):
    """A sweep run as a Celery task: its lines and its events share one id (a request's id reaching
    a task through the broker is tested with a real worker in tests/vendure)."""
    from usecases.tasks import assign_orders_due

    ZoneFactory()
    order = receive_order(ShopChannelFactory(), code="LOG-4")
    driver = DriverFactory()
    json_log.readouterr()
    assign_orders_due.apply()
    assert Order.objects.get(pk=order.pk).driver_id == driver.pk
    [assigned] = [line for line in json_log.readouterr() if line.get("event") == "order.assigned"]
    assert assigned["correlation_id"] == AuditEvent.objects.get(kind="order.assigned").correlation_id != ""
