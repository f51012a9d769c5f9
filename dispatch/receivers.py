"""Reactions to committed changes: when capacity frees up, retry waiting orders soon."""

from typing import Any

from dispatch.models import Order
from dispatch.signals import driver_became_available, order_status_changed

FREES_CAPACITY = {Order.Status.DELIVERED, Order.Status.CANCELLED, Order.Status.FAILED, Order.Status.UNASSIGNED}


def _run_assignment_sweep_soon() -> None:
    from dispatch.tasks import assign_orders_due

    assign_orders_due.delay()


def on_order_status_changed(sender: Any, order_id: int, before: str, after: str, **kwargs: Any) -> None:
    if after in FREES_CAPACITY and before in Order.ACTIVE_STATUSES:
        _run_assignment_sweep_soon()


def on_driver_became_available(sender: Any, driver_id: int, **kwargs: Any) -> None:
    _run_assignment_sweep_soon()


def connect() -> None:
    order_status_changed.connect(on_order_status_changed, dispatch_uid="dispatch.sweep_on_free_capacity")
    driver_became_available.connect(on_driver_became_available, dispatch_uid="dispatch.sweep_on_available")
