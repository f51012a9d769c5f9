"""Proofs of delivery on their order's page in admin: read only, each image shown through the
staff-only view (never a public URL)."""

from django.urls import reverse
from django.utils.html import format_html

from dispatch.admin import ReadOnlyInline
from proof.models import DeliveryProof


class DeliveryProofInline(ReadOnlyInline):
    model = DeliveryProof
    fields = readonly_fields = ("kind", "uploaded_at", "driver", "image", "size_bytes", "sha256")
    ordering = ["uploaded_at"]

    def image(self, proof: DeliveryProof) -> str:
        url = reverse("proof-image", args=[proof.pk])
        return format_html(
            '<a href="{}" target="_blank" rel="noopener"><img src="{}" alt="{}" style="max-height: 120px"></a>', url, url, proof.get_kind_display()
        )
