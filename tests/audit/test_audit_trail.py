import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    ZoneFactory()
    DriverFactory()
    receive_order(ShopChannelFactory())
    return AuditEvent.objects.filter(kind="order.received").get()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_auditevent SET kind = 'tampered' WHERE id = %s", "DELETE FROM audit_auditevent WHERE id = %s"],
    ids=["update", "delete"],
)
def test_the_database_refuses_to_change_or_remove_an_audit_event(event, statement):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [event.pk])
    event.refresh_from_db()
    assert event.kind == "order.received"


def test_the_database_refuses_to_truncate_the_audit_table(event):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_orm_cannot_delete_or_update_either(event):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(after={})


def test_each_change_writes_one_event_with_before_after_actor_and_subject(event):
    assert event.actor_kind == AuditEvent.ActorKind.SHOP
    assert event.subject_type == "order" and event.order_code
    assigned = AuditEvent.objects.get(kind="order.assigned")
    assert assigned.before == {"status": "received", "driver": None}
    assert assigned.after["status"] == "assigned" and assigned.after["driver"] == assigned.driver_id
    assert assigned.actor_kind == AuditEvent.ActorKind.SYSTEM
    assert assigned.correlation_id == event.correlation_id  # one intake, one id
