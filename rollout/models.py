from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Feature(models.TextChoices):
    """The v2 features. Each has a waffle switch of the same name (the kill-switch)."""

    OFFERS = "v2_offers", "Offers over WebSocket"
    AVAILABILITY = "v2_availability", "Availability states, breaks and heartbeats"
    AUTO_REASSIGN = "v2_auto_reassign", "Automatic reassignment when a driver goes offline, silent or misses a pickup"


class RolloutPolicy(models.Model):
    """What share of drivers a switched-on v2 feature reaches.

    A driver is in when a stable hash of (feature, driver id) falls below the percentage, so
    raising it from 5 to 25 to 50 to 100 only ever adds drivers.
    """

    feature = models.CharField(max_length=32, choices=Feature.choices, unique=True)
    percentage = models.PositiveSmallIntegerField(default=0, validators=[MinValueValidator(0), MaxValueValidator(100)])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "rollout policies"
        constraints = [models.CheckConstraint(condition=models.Q(percentage__gte=0, percentage__lte=100), name="rollout_percentage_range")]

    def __str__(self) -> str:
        return f"{self.get_feature_display()}: {self.percentage}%"
