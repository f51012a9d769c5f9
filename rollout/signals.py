from django.dispatch import Signal

# Sent after commit with `name` when a kill-switch was turned off.
feature_switched_off = Signal()
