"""Tell the shop about pickup and delivery once they have committed."""

from typing import Any

from dispatch.models import Order
from dispatch.signals import order_status_changed
from vendure.services import STEP_DELIVERED, STEP_SHIPPED

STEP_FOR_STATUS = {Order.Status.PICKED_UP: STEP_SHIPPED, Order.Status.DELIVERED: STEP_DELIVERED}


def on_order_status_changed(sender: Any, order_id: int, before: str, after: str, **kwargs: Any) -> None:
    step = STEP_FOR_STATUS.get(after)  # type: ignore[call-overload]
    if step is not None:
        from vendure.tasks import report_fulfillment_step

        report_fulfillment_step.delay(order_id, step)


def connect() -> None:
    order_status_changed.connect(on_order_status_changed, dispatch_uid="vendure.report_progress")
