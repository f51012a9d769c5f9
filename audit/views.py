"""Support pages: search the audit trail, read an order's story, export a result as CSV.

Read-only by construction: every view answers GET and HEAD only (405 otherwise), and none
calls a service. Open to the support and ops groups; drivers and others get 403.
"""

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from audit import selectors
from audit.forms import AuditSearchForm
from dispatch.access import SUPPORT_READERS, staff_group_required
from dispatch.models import Order
from tracking.selectors import tracking_link_shown

CSV_COLUMNS = [
    "occurred_at",
    "kind",
    "actor_kind",
    "actor_id",
    "actor_label",
    "subject_type",
    "subject_id",
    "order_id",
    "order_code",
    "driver_id",
    "zone_id",
    "before",
    "after",
    "data",
    "correlation_id",
]


@require_safe
@staff_group_required(SUPPORT_READERS)
def audit_search(request: HttpRequest) -> HttpResponse:
    form = AuditSearchForm(request.GET or None)
    context: dict[str, Any] = {"form": form, "searched": False, "section": "support"}
    if request.GET:
        if not form.is_valid():
            return render(request, "staff/audit_search.html", context, status=400)
        page = selectors.audit_events_page(selectors.audit_events_matching(form.filters()), form.cleaned_data["cursor"])
        query = request.GET.copy()
        query.pop("cursor", None)
        context.update(searched=True, page=page, query=query.urlencode())
    return render(request, "staff/audit_search.html", context)


@require_safe
@staff_group_required(SUPPORT_READERS)
def order_timeline(request: HttpRequest, order_id: int) -> HttpResponse:
    after = None
    if request.GET.get("after"):
        try:
            after = selectors.cursor_decode(request.GET["after"][:200])
        except selectors.CursorInvalid as exc:
            return HttpResponse(f"{exc}\n", status=400, content_type="text/plain; charset=utf-8")
    order = Order.objects.select_related("zone", "driver", "channel").filter(pk=order_id).first()
    story = selectors.order_story(order_id, after)
    status = 200 if order is not None or story.steps else 404
    context = {
        "order": order,
        "order_id": order_id,
        "steps": story.steps,
        "next_cursor": story.next_cursor,
        "is_continued": after is not None,
        "page_size": selectors.STORY_PAGE_SIZE,
        "section": "support",
        "tracking": tracking_link_shown(order_id) if order is not None else None,
    }
    return render(request, "staff/order_timeline.html", context, status=status)


class _Echo:
    """csv.writer writes into this; each row goes straight out in the streamed response."""

    def write(self, value: str) -> str:
        return value


@require_safe
@staff_group_required(SUPPORT_READERS)
def audit_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    form = AuditSearchForm(request.GET)
    if not form.is_valid():
        return HttpResponse(f"Bad search: {form.errors.as_text()}\n", status=400, content_type="text/plain; charset=utf-8")
    events = selectors.audit_events_matching(form.filters())[: settings.SUPPORT_EXPORT_MAX_ROWS]
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for event in events.iterator(chunk_size=2000):
            yield writer.writerow([_csv_value(getattr(event, column)) for column in CSV_COLUMNS])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit-events.csv"'
    return response


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) can
# send the sheet's data away). Order codes, names, reasons and correlation ids come from
# shops, drivers and callers: such a cell gets a leading quote, as OWASP advises.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    elif hasattr(value, "isoformat"):
        return value.isoformat()
    elif value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
