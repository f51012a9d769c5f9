"""A customer's tracking link: one per order, found by the hash of its token (tracking.links
says how the token is made and why it is never stored)."""

from django.db import models

from dispatch.models import Order


class TrackingLink(models.Model):
    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="tracking_link")
    token_hash = models.CharField(max_length=64, unique=True, editable=False, help_text="SHA-256 of the token, hex")
    nonce = models.CharField(max_length=32, editable=False, help_text="Random; the token is its HMAC under the tracking key")
    created_at = models.DateTimeField(editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_reason = models.CharField(max_length=255, blank=True, editable=False)

    class Meta:
        verbose_name = "tracking link"

    def __str__(self) -> str:
        return f"tracking link of order {self.order_id}"
