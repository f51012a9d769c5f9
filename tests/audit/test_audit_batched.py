"""audit_batched: the events of one use case in one INSERT, and never one more than commits."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.actors import SYSTEM
from audit.models import AuditEvent
from audit.services import audit_batched, audit_record, audit_record_many

pytestmark = pytest.mark.django_db


def event(n):
    return {"actor": SYSTEM, "subject_type": "test", "subject_id": n}


def test_the_events_of_a_block_are_written_in_one_insert_in_the_order_recorded():
    with transaction.atomic(), CaptureQueriesContext(connection) as queries, audit_batched():
        audit_record("test.first", **event(1))
        audit_record_many([{"kind": "test.second", **event(2)}, {"kind": "test.third", **event(3)}])
        assert not AuditEvent.objects.filter(subject_type="test").exists()  # nothing yet
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    assert list(AuditEvent.objects.filter(subject_type="test").order_by("pk").values_list("kind", flat=True)) == ["test.first", "test.second", "test.third"]


def test_an_exception_in_the_block_writes_nothing():
    with pytest.raises(RuntimeError), transaction.atomic(), audit_batched():
        audit_record("test.lost", **event(1))
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.filter(subject_type="test").exists()


def test_an_event_inside_a_savepoint_that_rolls_back_is_rolled_back_with_it():
    with transaction.atomic(), audit_batched():
        audit_record("test.kept", **event(1))
        try:
            with transaction.atomic():
                audit_record("test.undone", **event(2))
                raise ValueError("undo the savepoint")
        except ValueError:
            pass
        audit_record("test.kept_too", **event(3))
    assert sorted(AuditEvent.objects.filter(subject_type="test").values_list("kind", flat=True)) == ["test.kept", "test.kept_too"]


def test_a_transaction_marked_to_roll_back_records_nothing_and_raises_nothing():
    with transaction.atomic(), audit_batched():
        audit_record("test.undone", **event(1))
        transaction.set_rollback(True)
    assert not AuditEvent.objects.filter(subject_type="test").exists()
