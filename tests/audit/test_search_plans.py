"""Each support search is served by an index, proven by PostgreSQL's EXPLAIN on a log of
200,000 events: no search reads the whole table. (bench/audit_search.py times them on 5,000,000.)

One test for all the plans: loading the log is the slow part, and it is done once.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from audit.selectors import PAGE_SIZE, audit_events_matching, audit_events_page
from dispatch.models import Zone

pytestmark = pytest.mark.django_db
EVENTS = 200_000


def load_log():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO audit_auditevent (occurred_at, kind, actor_kind, actor_id, actor_label, subject_type, subject_id,
                                          order_id, order_code, driver_id, zone_id, before, after, data, correlation_id)
            SELECT now() - (g || ' seconds')::interval * 13,
                   (ARRAY['order.received','order.assigned','offer.made','offer.accepted','offer.declined','offer.expired','order.delivered','driver.online'])[1 + g %% 8],
                   'system', '', 'driver ' || (g %% 500), 'order', (g %% 20000)::text,
                   g %% 20000, 'C' || (g %% 20000), g %% 500, g %% 4, NULL, NULL, '{}', md5((g / 5)::text)
            FROM generate_series(1, %s) AS g
            """,
            [EVENTS],
        )
        cursor.execute("ANALYZE audit_auditevent")


def plan(queryset):
    text = queryset.explain()
    assert "Seq Scan on audit_auditevent" not in text, text
    return text


def first_page(filters):
    return audit_events_matching(filters)[: PAGE_SIZE + 1]


def test_every_search_reads_an_index_never_the_table():
    load_log()
    day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    # The searches support makes most: each by the index that leads with its filter.
    assert "audit_order_code_time" in plan(first_page({"order": "C1234"}))
    by_id = plan(first_page({"order": "1234"}))  # digits: our order id, or a code made of digits
    assert "audit_order_time" in by_id and "audit_order_code_time" in by_id
    assert "audit_correlation_time" in plan(first_page({"correlation_id": "c4ca4238a0b923820dcc509a6f75849b"}))
    assert "audit_driver_time" in plan(first_page({"driver": 17, "since": day, "until": day + timedelta(days=1)}))
    assert "audit_kind_time" in plan(first_page({"kind": "escalation.raised"}))  # a rare kind
    # A common value (one event in 8 is offer.expired, one in 4 is in a zone) is cheapest read
    # from the time index, newest first, stopping at a page; either way an index.
    zone = Zone.objects.create(name="Plan", slug="plan")
    for filters, own in (({"kind": "offer.expired"}, "audit_kind_time"), ({"actor": "driver 42"}, "audit_actor_time"), ({"zone": zone}, "audit_zone_time")):
        text = plan(first_page(filters))
        assert own in text or "audit_time" in text, (filters, text)
    # The next page is a keyset read ("older than this time and id"), not an OFFSET.
    events = audit_events_matching({"order": "C1234"})
    last = audit_events_page(events, None).events[-1]
    next_page = events.filter(Q(occurred_at__lt=last.occurred_at) | Q(occurred_at=last.occurred_at, id__lt=last.pk))[: PAGE_SIZE + 1]
    assert "audit_order_code_time" in plan(next_page)
    assert "OFFSET" not in str(next_page.query).upper()
