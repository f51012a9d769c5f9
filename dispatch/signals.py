"""Domain signals, sent after the change has committed (never for a rolled-back change)."""

from django.dispatch import Signal

# Sent with order_id, before (status), after (status). Receivers run after commit; a
# receiver that fails must not undo dispatch, so they only enqueue work.
order_status_changed = Signal()

# Sent with driver_id when a driver can take work again (came online, freed capacity).
driver_became_available = Signal()
