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

from django.contrib.auth import get_user_model
from django.db import connection

from dispatch.errors import NotFound
from dispatch.models import Driver, Order


def order_lock(order_id: int, *, skip_locked: bool = False) -> Order | None:
    """Lock one order's row and read it; None when it does not exist (or, with skip_locked,
    when another transaction holds it)."""
    return Order.objects.select_for_update(skip_locked=skip_locked, of=("self",)).select_related("zone").filter(pk=order_id).first()


def order_locked(order_id: int) -> Order:
    """Lock one order's row and read it, or refuse: it does not exist."""
    order = order_lock(order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def orders_lock(order_ids: Iterable[int], *, skip_locked: bool = False) -> dict[int, Order]:
    """Lock several orders' rows in primary-key order and read them, by id (with skip_locked,
    those another transaction holds are left out)."""
    queryset = Order.objects.select_for_update(skip_locked=skip_locked, of=("self",)).select_related("zone").filter(pk__in=list(order_ids)).order_by("pk")
    return {order.pk: order for order in queryset}


def driver_lock_unless_held(driver_id: int) -> bool:
    """Lock the driver's row unless another transaction holds it (it is deciding about them,
    or writing their heartbeat this very moment): True when this transaction holds it now."""
    return Driver.objects.select_for_update(skip_locked=True, no_key=True).filter(pk=driver_id).values_list("pk", flat=True).first() is not None


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
