"""Escalations follow their orders; drivers who drop out lose the orders they have not picked up."""

from typing import Any

from dispatch.models import Driver, Reassignment
from dispatch.signals import driver_became_unavailable, order_moved


def on_order_moved(sender: Any, order_id: int, before: str, after: str, **kwargs: Any) -> None:
    """Inside the order's transaction: escalations about its old status resolve with the change."""
    from escalation.services import escalations_resolve_for_order

    escalations_resolve_for_order(order_id=order_id, status=after)


def on_driver_became_unavailable(sender: Any, driver_id: int, reason: str, cause: str = "", **kwargs: Any) -> None:
    """After commit: a driver gone offline loses what they have not picked up (when the switch
    is on for them). The reassignment sweep repeats this if the broker was down."""
    if reason != Driver.Availability.OFFLINE:
        return
    from escalation.tasks import reassign_driver_orders

    why = Reassignment.Reason.DRIVER_SILENT if cause == "silent" else Reassignment.Reason.DRIVER_OFFLINE
    reassign_driver_orders.delay(driver_id, why)


def connect() -> None:
    order_moved.connect(on_order_moved, dispatch_uid="escalation.resolve_on_order_moved")
    driver_became_unavailable.connect(on_driver_became_unavailable, dispatch_uid="escalation.reassign_on_driver_offline")
