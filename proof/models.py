"""Proof of delivery a driver attaches to an order: a photo at the door, or the customer's
signature. Only the image's cleaned copy is stored (re-encoded, no metadata), through Django's
storage API; it is shown to support and ops, never served publicly."""

from django.db import models

from dispatch.models import Driver, Order


class DeliveryProof(models.Model):
    class Kind(models.TextChoices):
        PHOTO = "photo", "Photo"
        SIGNATURE = "signature", "Signature"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="proofs")
    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    file = models.FileField(max_length=255, help_text="Name in the proof storage")
    content_type = models.CharField(max_length=32)
    size_bytes = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, help_text="Of the stored (cleaned) image")
    uploaded_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["order", "uploaded_at"], name="deliveryproof_order")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of order {self.order_id}"


class HandoverCode(models.Model):
    """The code a customer tells the driver at the door when their shop or zone requires one:
    shown on the tracking page, sent by the driver with the delivery. Wrong codes are counted;
    at DISPATCH_HANDOVER_MAX_ATTEMPTS the order can no longer be delivered by the driver and
    escalates (handover_code_failed)."""

    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="handover_code")
    code = models.CharField(max_length=4)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"handover code of order {self.order_id}"
