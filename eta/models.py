"""Arrival estimates: what the service learned of each zone's travel, and what it told each
order's customer, against when the order arrived."""

from django.db import models

from dispatch.models import Driver, Order, Zone


class TravelProfile(models.Model):
    """How fast a vehicle kind gets through a zone, learned from the zone's own deliveries by
    the sweep `travel_profiles_refresh_due` (a row with no zone is every zone's), and how wrong
    the estimates made with it were: the window a customer is shown spans the 10th to the 90th
    percentile of those errors. Without a row, the settings' defaults hold."""

    zone = models.ForeignKey(Zone, on_delete=models.CASCADE, null=True, blank=True, related_name="travel_profiles")
    vehicle = models.CharField(max_length=16, choices=Driver.Vehicle.choices)
    speed_mps = models.FloatField(help_text="Median speed along the road from pickup to drop-off, metres a second")
    error_p10_s = models.FloatField(help_text="10th percentile of (arrival − estimate) at pickup, seconds")
    error_p90_s = models.FloatField(help_text="90th percentile of (arrival − estimate) at pickup, seconds")
    sample_count = models.PositiveIntegerField()
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["zone", "vehicle"], condition=models.Q(zone__isnull=False), name="travel_profile_once_a_zone"),
            models.UniqueConstraint(fields=["vehicle"], condition=models.Q(zone__isnull=True), name="travel_profile_once_for_all"),
        ]

    def __str__(self) -> str:
        return f"{self.vehicle} in {self.zone or 'every zone'}"


class OrderEta(models.Model):
    """The arrival an order's customer was shown when a driver was assigned and when the order
    was picked up, and when it arrived: what the accuracy figures are made of."""

    class Source(models.TextChoices):
        BUILT_IN = "built_in", "Built-in estimate"
        ROUTING = "routing", "Routing engine"

    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="eta")
    zone = models.ForeignKey(Zone, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    vehicle = models.CharField(max_length=16, choices=Driver.Vehicle.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    at_assignment = models.DateTimeField(null=True, blank=True)
    at_assignment_earliest = models.DateTimeField(null=True, blank=True)
    at_assignment_latest = models.DateTimeField(null=True, blank=True)
    at_pickup = models.DateTimeField(null=True, blank=True)
    at_pickup_earliest = models.DateTimeField(null=True, blank=True)
    at_pickup_latest = models.DateTimeField(null=True, blank=True)
    picked_up_at = models.DateTimeField(null=True, blank=True)
    pickup_to_dropoff_m = models.FloatField(null=True, blank=True, help_text="Along the road, as estimated")
    arrived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "order's arrival estimate"
        indexes = [models.Index(fields=["zone", "vehicle", "arrived_at"], name="ordereta_zone_vehicle_arrived")]

    def __str__(self) -> str:
        return f"arrival estimate of order {self.order_id}"
