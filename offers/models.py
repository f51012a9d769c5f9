from django.db import models
from django.db.models import Q

from dispatch.models import Driver, Order


class Offer(models.Model):
    """An order put to one driver until `expires_at`.

    The database keeps the invariants that no race may break: a driver holds at most one
    pending offer, and an order has at most one accepted offer.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        EXPIRED = "expired", "Expired"
        WITHDRAWN = "withdrawn", "Withdrawn"
        # Accepted, then the order was taken from the driver (offline, silent, no pickup, ops).
        TAKEN_BACK = "taken_back", "Taken back"

    # A missed offer: the driver said no or let it lapse. One definition, for who is not offered
    # an order again and for the escalation of an order missed too often.
    MISSED_STATES = (State.DECLINED, State.EXPIRED)

    class WithdrawnReason(models.TextChoices):
        TAKEN = "taken", "Another driver accepted first"
        ORDER_CANCELLED = "order_cancelled", "The order was cancelled"
        ORDER_ASSIGNED = "order_assigned", "The order was assigned otherwise"
        DRIVER_UNAVAILABLE = "driver_unavailable", "The driver went offline or on a break"
        SWITCHED_OFF = "switched_off", "Offers were switched off"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="offers")
    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="offers")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    decline_reason = models.CharField(max_length=255, blank=True)
    withdrawn_reason = models.CharField(max_length=32, choices=WithdrawnReason.choices, blank=True)
    distance_m = models.PositiveIntegerField(null=True, blank=True, help_text="Driver to pickup when offered")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["driver"], condition=Q(state="pending"), name="offer_one_pending_per_driver"),
            models.UniqueConstraint(fields=["order"], condition=Q(state="accepted"), name="offer_one_accepted_per_order"),
        ]
        indexes = [
            # The expiry sweep: pending offers by deadline, and nothing else.
            models.Index(fields=["expires_at"], condition=Q(state="pending"), name="offer_pending_expiry"),
            models.Index(fields=["order", "state"], name="offer_order_state"),
            models.Index(fields=["driver", "state"], name="offer_driver_state"),
            # Acceptance over the last hour (metrics, zone health).
            models.Index(fields=["answered_at"], condition=Q(answered_at__isnull=False), name="offer_answered"),
        ]

    def __str__(self) -> str:
        return f"offer {self.pk}: order {self.order_id} to driver {self.driver_id} ({self.state})"
