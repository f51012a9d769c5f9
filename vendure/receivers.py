"""Tell the shop about pickup and delivery: a step row in the change's own transaction."""

from typing import Any

from dispatch.models import Order
from dispatch.signals import order_moved
from vendure.models import FulfillmentStep

STEP_FOR_STATUS = {Order.Status.PICKED_UP: FulfillmentStep.Step.SHIPPED, Order.Status.DELIVERED: FulfillmentStep.Step.DELIVERED}


def on_order_moved(sender: Any, order_id: int, before: str, after: str, **kwargs: Any) -> None:
    """Inside the order's transaction: the step commits or rolls back with the pickup or delivery."""
    step = STEP_FOR_STATUS.get(after)  # type: ignore[call-overload]
    if step is not None:
        from vendure.services import fulfillment_step_schedule

        fulfillment_step_schedule(order_id=order_id, step=step)


def connect() -> None:
    order_moved.connect(on_order_moved, dispatch_uid="vendure.report_progress")
