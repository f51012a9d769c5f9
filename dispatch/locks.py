"""Row locks on the core models, one helper per model.

Every transaction that holds more than one row lock takes them in one order: orders, then
drivers' accounts (auth users), then drivers, then offers; and rows of one model in
primary-key order. The one exception is a dispatch decision, which takes the drivers it offers
an order to (or assigns it to) in the order it ranks them: it never waits for one
(`driver_lock_unless_held`, SKIP LOCKED) and passes over a driver another decision holds, so
two decisions ranking two drivers in opposite orders cannot wait on each other. Two transactions therefore
never wait on each other in opposite orders, and no deadlock can form. Offers are only ever
changed under their order's lock, so the order's lock serialises everything that happens to
one order (answers, expiry, cancellation, assignment, a take-back).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.transaction import TransactionManagementError

from dispatch.errors import NotFound
from dispatch.models import Driver, Order, ShopChannel, Zone
from dispatch.rows import columns_count, columns_sql, instance_from_row, integer_out_of_range

_ORDERS, _CHANNELS, _ZONES, _DRIVERS = Order._meta.db_table, ShopChannel._meta.db_table, Zone._meta.db_table, Driver._meta.db_table


def order_lock(order_id: int, *, skip_locked: bool = False) -> Order | None:
    """Lock one order's row and read it; None when it does not exist (or, with skip_locked,
    when another transaction holds it)."""
    return next(iter(_orders_lock_read([order_id], skip_locked=skip_locked)), None)


def order_locked(order_id: int) -> Order:
    """Lock one order's row and read it, or refuse: it does not exist."""
    order = order_lock(order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def orders_lock(order_ids: Iterable[int], *, skip_locked: bool = False) -> dict[int, Order]:
    """Lock several orders' rows in primary-key order and read them, by id (with skip_locked,
    those another transaction holds are left out)."""
    return {order.pk: order for order in _orders_lock_read(list(order_ids), skip_locked=skip_locked)}


def _orders_lock_read(order_ids: list[int], *, skip_locked: bool) -> list[Order]:
    """The orders' rows, locked in primary-key order, each with its shop and zone (what the
    frames about it show, and what dispatching it reads).

    In SQL text (`dispatch.rows`): every move of every order starts here, and the ORM's
    queryset for it cost 1 ms of CPU against 0.13 ms for this.
    """
    order_ids = [order_id for order_id in order_ids if not integer_out_of_range(order_id)]
    if not order_ids:
        return []
    lock = ""
    if connection.features.has_select_for_update:  # the embedded SQLite locks the whole database
        if not connection.in_atomic_block:
            raise TransactionManagementError("an order's lock outlives its statement only inside a transaction")
        lock = "FOR UPDATE OF o SKIP LOCKED" if skip_locked else "FOR UPDATE OF o"
    placeholders = ", ".join(["%s"] * len(order_ids))
    sql = (
        f"SELECT {columns_sql(Order, 'o')}, {columns_sql(ShopChannel, 'c')}, {columns_sql(Zone, 'z')} "  # noqa: S608 (names only)
        f"FROM {_ORDERS} o JOIN {_CHANNELS} c ON c.id = o.channel_id LEFT JOIN {_ZONES} z ON z.id = o.zone_id "
        f"WHERE o.id IN ({placeholders}) ORDER BY o.id {lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, order_ids)
        rows = cursor.fetchall()
    orders = []
    channel_start = columns_count(Order)
    zone_start = channel_start + columns_count(ShopChannel)
    for row in rows:
        order = instance_from_row(Order, row)
        order.channel = instance_from_row(ShopChannel, row, channel_start)
        order.zone = instance_from_row(Zone, row, zone_start) if order.zone_id is not None else None
        orders.append(order)
    return orders


def driver_lock_unless_held(driver_id: int) -> bool:
    """Lock the driver's row unless another transaction holds it (it is deciding about them,
    or writing their heartbeat this very moment): True when this transaction holds it now."""
    if not connection.features.has_select_for_update:  # the embedded SQLite: one writer at a time
        return Driver.objects.filter(pk=driver_id).exists()
    if not connection.in_atomic_block:
        raise TransactionManagementError("a driver's lock outlives its statement only inside a transaction")
    with connection.cursor() as cursor:  # each decision asks it of each driver it tries: in SQL text
        cursor.execute(f"SELECT id FROM {_DRIVERS} WHERE id = %s FOR NO KEY UPDATE SKIP LOCKED", [driver_id])  # noqa: S608 (names only)
        return cursor.fetchone() is not None


def driver_account_lock(driver_id: int) -> bool | None:
    """Share-lock the driver's user row and read whether it is active; None when there is no
    such driver. A deactivation in flight (an UPDATE of that row) is waited for and what it left
    is read; two assignments share the lock, so they never wait on each other here (several
    drivers tried in one decision are locked in rank order, which would deadlock otherwise)."""
    user_table = connection.ops.quote_name(get_user_model()._meta.db_table)
    driver_table = connection.ops.quote_name(Driver._meta.db_table)
    share = "FOR SHARE OF u" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT u.is_active FROM {user_table} u JOIN {driver_table} d ON d.user_id = u.id WHERE d.id = %s {share}",  # noqa: S608 (table names only)
            [driver_id],
        )
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


@dataclass(frozen=True)
class CapacityTaking:
    """What taking a unit of a driver's capacity found: whether their account is active (None:
    no such driver), whether this transaction holds their row, and the driver's row as the
    UPDATE left it when a unit was taken (what follows an assignment reads it from here)."""

    is_active: bool | None
    is_held: bool
    driver: Driver | None = None

    @property
    def is_taken(self) -> bool:
        return self.driver is not None


def driver_capacity_take(driver_id: int, *, idle_since: Any, wait_for_driver: bool) -> CapacityTaking:
    """Lock the driver's account (`driver_account_lock`), then their row (without waiting for
    another transaction's hold unless `wait_for_driver`: `driver_lock_unless_held`), then take a
    unit of capacity if they have one free (`Driver.free_capacity_sql`), in that order.

    On PostgreSQL the three are one statement: every assignment and accept takes a unit, and
    three round trips were a quarter of a dispatch decision's statements. The account's read is
    a one-time filter of the driver's lock, which the UPDATE reads, so they are taken in order.
    """
    if not connection.features.has_select_for_update:  # the embedded SQLite: one writer at a time
        is_active = driver_account_lock(driver_id)
        is_held = bool(is_active) and (wait_for_driver or driver_lock_unless_held(driver_id))
        with connection.cursor() as cursor:
            if is_held:
                cursor.execute(_capacity_take_sql(), [idle_since, driver_id])
            is_taken = is_held and cursor.rowcount > 0
        return CapacityTaking(is_active=is_active, is_held=is_held, driver=Driver.objects.get(pk=driver_id) if is_taken else None)
    if not connection.in_atomic_block:
        raise TransactionManagementError("a driver's locks outlive their statement only inside a transaction")
    with connection.cursor() as cursor:
        cursor.execute(_capacity_take_in_one_statement_sql(wait_for_driver), {"driver": driver_id, "idle_since": idle_since})
        row = cursor.fetchone()
    is_taken = row[2] is not None  # the driver's id, when the UPDATE returned their row
    return CapacityTaking(is_active=row[0], is_held=row[1], driver=instance_from_row(Driver, row, 2) if is_taken else None)


def _capacity_take_sql(*, idle_since: str = "%s", driver_filter: str = "id = %s") -> str:
    return (
        f"UPDATE {_DRIVERS} SET active_order_count = active_order_count + 1, idle_since = {idle_since} "  # noqa: S608 (names only)
        f"WHERE {driver_filter} AND {Driver.free_capacity_sql()}"
    )


@cache
def _capacity_take_in_one_statement_sql(wait_for_driver: bool) -> str:
    users = connection.ops.quote_name(get_user_model()._meta.db_table)
    take = _capacity_take_sql(idle_since="%(idle_since)s", driver_filter="id IN (SELECT id FROM held)")
    return (
        f"WITH account AS (SELECT u.is_active FROM {users} u JOIN {_DRIVERS} d ON d.user_id = u.id WHERE d.id = %(driver)s FOR SHARE OF u), "  # noqa: S608 (names only)
        f"held AS (SELECT id FROM {_DRIVERS} WHERE id = %(driver)s AND (SELECT is_active FROM account) "
        f"{'' if wait_for_driver else 'FOR NO KEY UPDATE SKIP LOCKED'}), "
        f"taken AS ({take} RETURNING *) "
        f"SELECT (SELECT is_active FROM account), EXISTS (SELECT 1 FROM held), {columns_sql(Driver, 'taken')} FROM (SELECT 1) AS one LEFT JOIN taken ON true"
    )
