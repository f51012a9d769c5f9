"""Support search on a large audit trail: 5,000,000 events (`manage.py generate_audit_events`).

Each search is timed through the real view (middleware, query, template), as support staff
get it, and as its query alone; figures are ratios to a primary-key lookup of one event in
the same run. Targets: by order code or correlation id under 50 ms of server time, by driver
and a day under 200 ms.
"""

import io
import os
import statistics
import time
from datetime import timedelta
from typing import Any

from bench.harness import prepare_database, write_result

EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "5000000"))
REPEAT = int(os.environ.get("BENCH_AUDIT_REPEAT", "30"))
TARGET_MS = {"order code": 50.0, "order id": 50.0, "correlation id": 50.0, "driver and a day": 200.0}


def timed(call: Any) -> tuple[float, float]:
    """Median and p95 in ms of REPEAT calls, after one warm-up call."""
    call()
    runs = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        call()
        runs.append((time.perf_counter() - started) * 1000)
    runs.sort()
    return statistics.median(runs), runs[int(len(runs) * 0.95) - 1]


def run() -> dict[str, Any]:
    prepare_database()
    import logging

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.test import Client

    from audit.forms import AuditSearchForm
    from audit.models import AuditEvent
    from audit.selectors import audit_events_matching, audit_events_page
    from dispatch.models import Zone

    logging.getLogger("django.request").setLevel(logging.ERROR)
    for n in range(4):
        Zone.objects.create(name=f"Zone {n}", slug=f"zone-{n}")
    started = time.perf_counter()
    call_command("generate_audit_events", count=EVENTS, days=30, stdout=io.StringIO())
    load_s = time.perf_counter() - started

    user = get_user_model().objects.create_user(username="bench-support", password="bench-support-pass", is_staff=True)
    user.groups.add(Group.objects.get(name="support"))
    client = Client()
    client.force_login(user)

    middle = AuditEvent.objects.order_by().values_list("pk", flat=True).get(pk=EVENTS // 2)
    sample = AuditEvent.objects.get(pk=middle)
    driver_event = AuditEvent.objects.filter(pk__gt=middle, driver_id__isnull=False).order_by("pk").first()
    assert driver_event is not None
    day = driver_event.occurred_at.replace(hour=0, minute=0, second=0, microsecond=0)
    searches: dict[str, dict[str, Any]] = {
        "order code": {"order": sample.order_code},
        "order id": {"order": str(sample.order_id)},
        "correlation id": {"correlation_id": sample.correlation_id},
        "driver and a day": {
            "driver": driver_event.driver_id,
            "since": day.strftime("%Y-%m-%dT%H:%M"),
            "until": (day + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        },
    }
    pk_ms, pk_p95 = timed(lambda: AuditEvent.objects.get(pk=middle))
    rows: dict[str, dict[str, float]] = {"primary key lookup": {"median_ms": pk_ms, "p95_ms": pk_p95}}
    errors = 0
    for name, params in searches.items():
        response = client.get("/support/", params)
        assert response.status_code == 200, (name, response.status_code)
        form = AuditSearchForm(params)
        assert form.is_valid(), form.errors
        found = len(audit_events_page(audit_events_matching(form.filters()), None).events)
        page_ms, page_p95 = timed(lambda params=params: client.get("/support/", params))
        query_ms, query_p95 = timed(lambda form=form: audit_events_page(audit_events_matching(form.filters()), None))
        within = page_ms < TARGET_MS[name]
        errors += int(not within or found == 0)
        rows[name] = {
            "events_on_page": found,
            "page_median_ms": page_ms,
            "page_p95_ms": page_p95,
            "query_median_ms": query_ms,
            "query_p95_ms": query_p95,
            "target_ms": TARGET_MS[name],
            "within_target": within,
            "page_over_pk_lookup": page_ms / pk_ms,
            "query_over_pk_lookup": query_ms / pk_ms,
        }
    report: dict[str, Any] = {
        "benchmark": f"support search on {EVENTS:,} audit events (server time through the view, and the query alone)",
        "load_s": load_s,
        "searches": rows,
        "errors": {"errors": errors},
    }
    write_result("audit_search", report)
    print(f"audit search: {EVENTS:,} events (loaded in {load_s:.0f} s); {REPEAT} runs each, median (p95)")
    print(f"  primary-key lookup: {pk_ms:.2f} ms ({pk_p95:.2f})")
    print(f"  {'search':<18}{'page ms':>16}{'query ms':>16}{'x pk (page)':>13}{'target':>9}{'events':>8}")
    for name in searches:
        row = rows[name]
        print(
            f"  {name:<18}{row['page_median_ms']:>8.1f} ({row['page_p95_ms']:>5.1f}){row['query_median_ms']:>8.1f} ({row['query_p95_ms']:>5.1f})"
            f"{row['page_over_pk_lookup']:>13.1f}{'<' + str(int(row['target_ms'])) + ' ms':>9}{row['events_on_page']:>8}{'' if row['within_target'] else '  MISSED'}"
        )
    return report
