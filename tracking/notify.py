"""Messages to the tracking pages open on an order, through the channel layer after commit.

A message says only that something changed (or carries a position the sender was allowed to
show): each socket reads its own order's state from the database, so a message sent to the
wrong group could show nothing of another order.
"""

from datetime import datetime
from typing import Any

from dispatch import layer_outbox
from eta.estimate import Estimate


def tracking_group(order_id: int) -> str:
    return f"track.{order_id}"


def order_changed_send(order_id: int) -> None:
    layer_outbox.group_send(tracking_group(order_id), {"type": "track.changed"})


def driver_position_send(*, arrivals: dict[int, Estimate | None], driver_id: int, lat: float, lon: float, at: datetime) -> None:
    """The driver's new position, with the arrival it leads to, to the pages of each order they
    carry (picked up, not ended): `arrivals` maps those orders to their estimates."""
    layer_outbox.group_send_all(
        [
            (
                tracking_group(order_id),
                {
                    "type": "track.position",
                    "order": order_id,
                    "driver": driver_id,
                    "lat": lat,
                    "lon": lon,
                    "at": at.isoformat(),
                    "eta": _as_message(estimate.as_public()) if estimate else None,
                },
            )
            for order_id, estimate in arrivals.items()
        ]
    )


def _as_message(values: dict[str, Any]) -> dict[str, Any]:
    """Moments as ISO text: the channel layer carries msgpack, which has no datetime."""
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in values.items()}
