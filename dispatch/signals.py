"""Domain signals, sent after the change has committed (never for a rolled-back change)."""

from django.dispatch import Signal

# Sent with order_id, before (status), after (status). Receivers run after commit; a
# receiver that fails must not undo dispatch, so they only enqueue work.
order_status_changed = Signal()

# Sent with driver_id when a driver can take work again (came online, freed capacity).
driver_became_available = Signal()

# Sent inside the transaction (not after commit) when an order stops waiting for a driver,
# with order_id, to (the new status) and reason, so that open offers are withdrawn together
# with the change that makes them moot.
order_stopped_waiting = Signal()

# Sent after commit when a driver can no longer take work, with driver_id, reason (the new
# availability: offline, on_break) and cause (why: "silent" when the silence sweep took them
# offline, empty when they chose to); receivers lock what they change themselves.
driver_became_unavailable = Signal()

# Sent inside the transaction of every status change of an order, with order_id, before,
# after (statuses), driver_id (the driver before the change) and reason, so that what depended
# on the old status (open escalations, the accepted offer of a driver who lost the order) is
# settled together with the change.
order_moved = Signal()
