"""The hot paths' statements in SQL text (dispatch.rows) read and write exactly what the ORM
would: every value through its field, JSON and datetimes included, on the database in use."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from audit.models import AuditEvent
from dispatch.locks import order_lock, orders_lock
from dispatch.models import Driver, Order, Zone
from dispatch.rows import row_ids, row_insert_unless_conflict, row_update, row_upsert, rows_insert, rows_read
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = pytest.mark.django_db


def test_a_row_read_as_text_equals_the_orm_read_json_and_times_included():
    zone = ZoneFactory(postal_code_prefixes=["101", "<script>"])
    [read] = rows_read(Zone, id=zone.pk)
    orm = Zone.objects.get(pk=zone.pk)
    assert {f.attname: getattr(read, f.attname) for f in Zone._meta.concrete_fields} == {f.attname: getattr(orm, f.attname) for f in Zone._meta.concrete_fields}
    assert read._state.adding is False


def test_rows_inserted_together_get_their_own_ids_in_order_and_read_back_as_written():
    now = timezone.now()
    events = [
        AuditEvent(
            kind=f"test.{n}", actor_kind="system", subject_type="t", subject_id=str(n), occurred_at=now + timedelta(seconds=n), data={"n": n, "text": "ü'\""}
        )
        for n in range(3)
    ]
    with transaction.atomic():
        rows_insert(events)
    assert [e.pk for e in events] == sorted(e.pk for e in events)
    for event in events:
        stored = AuditEvent.objects.get(pk=event.pk)
        assert (stored.kind, stored.occurred_at, stored.data) == (event.kind, event.occurred_at, event.data)


def test_a_conflicting_insert_is_skipped_and_says_so():
    ZoneFactory(slug="taken")
    again = Zone(name="Again", slug="taken")
    assert row_insert_unless_conflict(again) is False
    assert again.pk is None
    fresh = Zone(name="Fresh", slug="fresh")
    assert row_insert_unless_conflict(fresh) is True
    assert Zone.objects.get(pk=fresh.pk).slug == "fresh"


def test_a_compare_and_set_writes_only_while_the_row_holds_what_it_expects():
    zone = ZoneFactory(offer_timeout_s=30)
    assert row_update(Zone, zone.pk, {"offer_timeout_s": 45}, expected={"offer_timeout_s": 31}) is False
    assert row_update(Zone, zone.pk, {"offer_timeout_s": 45}, expected={"offer_timeout_s": 30}) is True
    assert row_update(Zone, zone.pk, {"offer_timeout_s": 60}, expected={"offer_timeout_s": 45}, later_than={"offer_timeout_s": 45}) is False
    assert row_update(Zone, zone.pk, {"offer_timeout_s": 60}, expected={"offer_timeout_s": 45}, later_than={"offer_timeout_s": 44}) is True
    assert Zone.objects.get(pk=zone.pk).offer_timeout_s == 60


def test_a_compare_and_set_refuses_to_expect_null_which_equality_never_matches():
    driver = DriverFactory()
    with pytest.raises(ValueError, match="isnull"):
        row_update(Driver, driver.pk, {"capacity": 2}, expected={"last_position_at": None})
    driver.refresh_from_db()
    assert driver.capacity == 1


def test_ids_match_equality_and_lists_and_an_empty_list_matches_nothing():
    zones = [ZoneFactory(slug=f"z{n}", name=f"Z{n}") for n in range(3)]
    assert row_ids(Zone, slug=["z0", "z2"]) == [zones[0].pk, zones[2].pk]
    assert row_ids(Zone, slug="z1", is_active=True) == [zones[1].pk]
    assert row_ids(Zone, slug=[]) == []


def test_an_order_lock_reads_the_order_with_its_shop_and_zone_as_the_orm_does():
    ZoneFactory(postal_code_prefixes=["101"])
    order = receive_order(ShopChannelFactory(), postal_code="10115")
    with transaction.atomic():
        locked = order_lock(order.pk)
        assert locked is not None
        assert {f.attname: getattr(locked, f.attname) for f in Order._meta.concrete_fields} == {
            f.attname: getattr(order, f.attname) for f in Order._meta.concrete_fields
        }
        assert (locked.channel, locked.zone) == (order.channel, order.zone)
        assert list(orders_lock([order.pk + 1000, order.pk])) == [order.pk]
        assert order_lock(order.pk + 1000) is None


@pytest.mark.django_db(transaction=True)  # no test-wide transaction around it
def test_an_order_lock_outside_a_transaction_is_refused():
    with pytest.raises(TransactionManagementError):
        order_lock(1)


def test_free_capacity_means_the_same_in_sql_text_in_a_queryset_and_of_an_instance():
    drivers = [DriverFactory(capacity=2) for _ in range(3)]
    for driver, count in zip(drivers, (0, 1, 2), strict=True):
        Driver.objects.filter(pk=driver.pk).update(active_order_count=count)
    ids = [d.pk for d in drivers]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT d.id FROM {Driver._meta.db_table} d WHERE d.id IN (%s, %s, %s) AND {Driver.free_capacity_sql('d')} ORDER BY d.id", ids)
        in_text = [row[0] for row in cursor.fetchall()]
    in_queryset = list(Driver.objects.filter(Driver.free_capacity_q(), pk__in=ids).order_by("pk").values_list("pk", flat=True))
    of_instances = [d.pk for d in Driver.objects.filter(pk__in=ids).order_by("pk") if d.has_free_capacity]
    assert in_text == in_queryset == of_instances == ids[:2]


def test_an_id_no_bigint_holds_matches_no_row_instead_of_failing():
    zone = ZoneFactory()
    too_big = 2**63
    assert rows_read(Zone, id=too_big) == []
    assert row_ids(Zone, id=[zone.pk, too_big]) == [zone.pk]
    assert row_update(Zone, too_big, {"name": "X"}, expected={"name": zone.name}) is False
    with transaction.atomic():
        assert order_lock(too_big) is None
        assert orders_lock([too_big, -(2**63) - 1]) == {}


def test_none_asks_is_null_as_the_orm_does_and_a_set_is_a_list():
    placed, unplaced = DriverFactory(), DriverFactory()
    Driver.objects.filter(pk=placed.pk).update(last_lat=52.5, last_lon=13.4)
    Driver.objects.filter(pk=unplaced.pk).update(last_lat=None, last_lon=None)
    assert row_ids(Driver, last_lat=None) == list(Driver.objects.filter(last_lat=None).order_by("pk").values_list("pk", flat=True))
    assert unplaced.pk in row_ids(Driver, last_lat=None)
    assert placed.pk not in row_ids(Driver, last_lat=None)
    assert row_ids(Driver, id={placed.pk, unplaced.pk}) == sorted([placed.pk, unplaced.pk])


def test_an_upsert_inserts_once_then_updates_only_the_fields_it_names():
    from eta.models import OrderEta

    ZoneFactory()
    order = receive_order(ShopChannelFactory())
    first = OrderEta(order=order, vehicle="bicycle", source="built_in", at_assignment=timezone.now())
    row_upsert(first, unique_fields=["order"], update_fields=["vehicle"])
    again = OrderEta(order=order, vehicle="car", source="routing", at_assignment=None)
    row_upsert(again, unique_fields=["order"], update_fields=["vehicle"])
    kept = OrderEta.objects.get(order=order)
    assert again.pk == first.pk == kept.pk
    assert (kept.vehicle, kept.source, kept.at_assignment) == ("car", "built_in", first.at_assignment)
