"""`/ops/eta/`: how right the arrival estimates were, for ops."""

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from dispatch.access import OPS, staff_group_required
from eta.selectors import STAGES, estimate_accuracy

WEEKS_SHOWN_MAX = 26


@require_safe
@staff_group_required(OPS)
def eta_accuracy_page(request: HttpRequest) -> HttpResponse:
    stage = request.GET.get("stage", "pickup")
    if stage not in STAGES:
        stage = "pickup"
    try:
        weeks = min(max(int(request.GET.get("weeks", "8")), 1), WEEKS_SHOWN_MAX)
    except ValueError:
        weeks = 8
    rows = estimate_accuracy(stage=stage, since=timezone.now() - timedelta(weeks=weeks))
    context = {"rows": rows, "stage": stage, "weeks": weeks, "stages": list(STAGES), "section": "eta"}
    return render(request, "staff/eta_accuracy.html", context)
