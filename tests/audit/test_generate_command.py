"""`manage.py generate_audit_events`: a synthetic log for load tests, searchable like a real one."""

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from audit.selectors import audit_events_matching

pytestmark = pytest.mark.django_db


def test_it_adds_stories_of_ten_events_per_order():
    call_command("generate_audit_events", count=1000, days=2, drivers=20, stdout=open("/dev/null", "w"))
    assert AuditEvent.objects.filter(subject_type="synthetic").count() == 1000
    story = list(audit_events_matching({"order": "SYN-7"}).values_list("kind", flat=True))
    assert len(story) == 10 and story[-1] == "order.received" and story[0] == "order.delivered"
    assert audit_events_matching({"driver": 8}).exists()


@pytest.mark.parametrize("options", [{"count": 0}, {"count": 10, "days": 0}, {"count": 10, "drivers": -1}])
def test_bad_options_are_refused_and_add_nothing(options):
    with pytest.raises(CommandError):
        call_command("generate_audit_events", **options)
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"count": 10, "days": 10**7}, "--days"),  # timestamps before year 1: a DataError traceback before
        ({"count": 10, "orders": -5}, "--orders"),
        ({"count": 10**9}, "--count"),
        ({"count": 10, "batch": 10**9}, "--batch"),
    ],
)
def test_options_past_what_the_log_can_hold_are_refused_and_add_nothing(options, message):
    with pytest.raises(CommandError, match=message):
        call_command("generate_audit_events", **options)
    assert not AuditEvent.objects.exists()
