"""Messages to the tracking pages open on an order, through the channel layer after commit.

A message says only that something changed (or carries a position the sender was allowed to
show): each socket reads its own order's state from the database, so a message sent to the
wrong group could show nothing of another order.
"""

from datetime import datetime

from dispatch import layer_outbox


def tracking_group(order_id: int) -> str:
    return f"track.{order_id}"


def order_changed_send(order_id: int) -> None:
    layer_outbox.group_send(tracking_group(order_id), {"type": "track.changed"})


def driver_position_send(*, order_ids: list[int], driver_id: int, lat: float, lon: float, at: datetime) -> None:
    """The driver's new position, to the pages of the orders they carry (picked up, not ended)."""
    layer_outbox.group_send_all(
        [
            (tracking_group(order_id), {"type": "track.position", "order": order_id, "driver": driver_id, "lat": lat, "lon": lon, "at": at.isoformat()})
            for order_id in order_ids
        ]
    )
