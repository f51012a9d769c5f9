"""What support's pages can be made to spend or trip on: hostile search parameters are a 400 or an
empty result, never a 500; an order's timeline is drawn a page at a time; the CSV export is
read lazily, in chunks, and stops at SUPPORT_EXPORT_MAX_ROWS."""

import base64
import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import STORY_PAGE_SIZE
from tests.factories import staff_member

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups")]
ORDER_ID = 4242


@pytest.fixture
def support():
    client = Client(raise_request_exception=False)
    client.force_login(staff_member("support"))
    return client


def events_of_order(count: int) -> list[AuditEvent]:
    start = timezone.now() - timedelta(days=1)
    return AuditEvent.objects.bulk_create(
        AuditEvent(
            occurred_at=start + timedelta(seconds=n // 3),  # several events share a moment: the id breaks ties
            kind="offer.made",
            actor_kind="system",
            subject_type="offer",
            subject_id=str(n),
            order_id=ORDER_ID,
            order_code="MANY-1",
        )
        for n in range(count)
    )


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("url", ["/support/", "/support/export.csv"])
@pytest.mark.parametrize(
    "query, status",
    [
        # "²" is a digit to str.isdigit() and not to int(): both were a 500
        ({"order": "²"}, 200),
        ({"cursor": cursor("2026-01-01T00:00:00+00:00|²")}, 400),
        ({"cursor": cursor("2026-13-01T00:00:00+00:00|5")}, 400),
        ({"cursor": "x" * 10_000}, 400),
        ({"order": "9" * 40}, 200),
        ({"driver": "9" * 40}, 200),
        ({"order": "a\x00b"}, 400),
        ({"kind": "\x00"}, 400),
        ({"actor": "\x00"}, 400),
        ({"correlation_id": "\x00"}, 400),
        ({"since": "0001-01-01 00:00", "until": "9999-12-31 23:59"}, 200),
    ],
)
def test_hostile_search_parameters_are_a_400_or_an_empty_result_never_a_500(support, url, query, status):
    response = support.get(url, query)
    if response.streaming:
        b"".join(response.streaming_content)
    assert response.status_code == status


@pytest.mark.parametrize("url", ["/support/", "/support/export.csv", f"/support/orders/{ORDER_ID}/"])
def test_bytes_that_are_not_utf8_in_the_query_are_no_500(support, url):
    response = support.get(url + "?order=%ED%B0%80&after=%FF%FE")  # a lone surrogate in UTF-8 form, then garbage
    if response.streaming:
        b"".join(response.streaming_content)
    assert response.status_code < 500


def test_a_long_story_is_drawn_a_page_at_a_time_and_says_so(support, django_assert_max_num_queries):
    made = events_of_order(2 * STORY_PAGE_SIZE + 7)
    seen: list[int] = []
    url = f"/support/orders/{ORDER_ID}/"
    for expected in (STORY_PAGE_SIZE, STORY_PAGE_SIZE, 7):
        with django_assert_max_num_queries(8):
            response = support.get(url)
        assert response.status_code == 200
        steps = response.context["steps"]
        assert len(steps) == expected
        seen.extend(step.event.pk for step in steps)
        html = response.content.decode()
        if expected == STORY_PAGE_SIZE:
            assert f"This page shows {STORY_PAGE_SIZE} events" in html
            url = f"/support/orders/{ORDER_ID}/?after={response.context['next_cursor']}"
        else:
            assert "story-more" not in html and "Continued from an earlier page" in html
    assert seen == [event.pk for event in sorted(made, key=lambda e: (e.occurred_at, e.pk))]
    assert response.context["steps"][0].since_previous is not None  # measured from the page before


def test_a_timeline_cursor_that_is_not_ours_is_a_400(support):
    events_of_order(3)
    for after in ("garbage", cursor("2026-02-30T00:00:00+00:00|1"), cursor("2026-01-01T00:00:00+00:00|²")):
        assert support.get(f"/support/orders/{ORDER_ID}/", {"after": after}).status_code == 400


def test_the_export_is_read_lazily_in_chunks_and_stops_at_the_row_limit(support, settings):
    settings.SUPPORT_EXPORT_MAX_ROWS = 25
    events_of_order(60)
    with CaptureQueriesContext(connection) as before_streaming:
        response = support.get("/support/export.csv", {"order": "MANY-1"})
    # nothing of the log is read until the body is streamed out
    assert response.streaming
    assert not [q for q in before_streaming.captured_queries if "audit_auditevent" in q["sql"]]
    with CaptureQueriesContext(connection) as streaming:
        body = b"".join(response.streaming_content).decode()
    reads = [q["sql"] for q in streaming.captured_queries if "audit_auditevent" in q["sql"]]
    assert len(reads) == 1 and "LIMIT 25" in reads[0]
    assert len(list(csv.DictReader(io.StringIO(body)))) == 25


@pytest.mark.parametrize("query", ["order_id=%C2%B2", "driver_id=%C2%B2", "order_id=" + "9" * 40])
def test_the_audit_trail_in_admin_takes_a_deep_link_that_is_no_id_without_a_500(support, query):
    assert support.get(f"/admin/audit/auditevent/?{query}").status_code in (200, 302)
