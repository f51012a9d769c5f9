"""Telling drivers about their offers: a socket frame when they are connected, a push otherwise.

The database is the truth; a frame is a hint. A driver who reconnects is sent their pending
offer and active orders again, so a lost frame costs nothing but a little time.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from dispatch import layer_outbox
from offers.frames import offer_frame, offer_result_frame, order_taken_back_frame
from offers.models import Offer


def driver_group(driver_id: int) -> str:
    return f"driver.{driver_id}"


def offer_sent(offer: Offer) -> None:
    """Once the offer is committed: the offer to its driver, and a push when they are not
    connected. Built from the objects the transaction made (the offer with its order, the
    order's shop and the driver), not read again."""
    from offers.push import push_if_not_connected

    driver_frame_send(offer.driver_id, offer_frame(offer))
    push_if_not_connected(offer)


def offer_answered(offer: Offer) -> None:
    """Once the answer is committed: its result to the driver (with the order, when won)."""
    driver_frame_send(offer.driver_id, offer_result_frame(offer))


def order_taken_back_send(*, driver_id: int, order_id: int, reason: str) -> None:
    """Tell a driver an order was taken back from them: a frame, and a push when not connected."""
    from dispatch.models import Driver, Order
    from offers.push import push_to_driver_if_not_connected

    code = Order.objects.filter(pk=order_id).values_list("code", flat=True).first() or str(order_id)
    driver_frame_send(driver_id, order_taken_back_frame(order_id, code, reason))
    driver = Driver.objects.filter(pk=driver_id).first()
    if driver is not None:
        push_to_driver_if_not_connected(
            driver, "Order reassigned", f"Order {code} was given to another driver ({reason.replace('_', ' ')}).", {"order_id": order_id, "reason": reason}
        )


def driver_credentials_changed_send(*, user_id: int) -> None:
    """Ask the driver's open sockets to check their credentials now (a token deleted, a user
    changed). A hint only: each socket also checks on its own timer."""
    from dispatch.models import Driver

    driver_id = Driver.objects.filter(user_id=user_id).values_list("pk", flat=True).first()
    if driver_id is not None:  # if the word is lost, the timer closes the socket anyway
        layer_outbox.group_send(driver_group(driver_id), {"type": "driver.credentials_changed"})


BATCH_MAX_FRAMES = 50
# Frames waiting to go out together; None when frames go out one by one.
_batch: ContextVar[list[tuple[int, dict[str, Any]]] | None] = ContextVar("driver_frame_batch", default=None)


@contextmanager
def driver_frames_batched() -> Iterator[None]:
    """Hand the frames made inside the block to the channel layer together at its end (and
    every BATCH_MAX_FRAMES), so that they go out in one batch.

    Frames made outside a block are batched too when they come faster than Redis answers
    (see dispatch.layer_outbox); a block makes a sweep's frames one batch for certain. Around
    a transaction (`with driver_frames_batched(), transaction.atomic(): ...`) it makes the
    frames of all its on-commit callbacks one batch: callbacks that each read the database
    before sending otherwise go out two or three to a batch.
    """
    frames: list[tuple[int, dict[str, Any]]] = []
    token = _batch.set(frames)
    try:
        yield
    finally:
        _batch.reset(token)
        if frames:
            _send_now(frames)


def driver_frame_send(driver_id: int, frame: dict[str, Any]) -> None:
    """Send a frame to the driver's sockets, soon: the caller does not wait for it."""
    pending = _batch.get()
    if pending is None:
        _send_now([(driver_id, frame)])
        return
    pending.append((driver_id, frame))
    if len(pending) >= BATCH_MAX_FRAMES:  # a long sweep must not hold its first frames back
        _send_now(pending[:])
        pending.clear()


def _send_now(frames: list[tuple[int, dict[str, Any]]]) -> None:
    layer_outbox.group_send_all([(driver_group(driver_id), {"type": "driver.frame", "frame": frame}) for driver_id, frame in frames])
