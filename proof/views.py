"""`/support/proofs/<id>/`: a proof's image, for support and ops only (never a public URL)."""

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_safe

from dispatch.access import SUPPORT_READERS, staff_group_required
from proof.models import DeliveryProof


@require_safe
@staff_group_required(SUPPORT_READERS)
def proof_image(request: HttpRequest, proof_id: int) -> FileResponse:
    proof = DeliveryProof.objects.filter(pk=proof_id).first()
    name = proof.file.name if proof is not None else None
    if proof is None or not name or not default_storage.exists(name):
        raise Http404("no such proof")
    response = FileResponse(default_storage.open(name, "rb"), content_type=proof.content_type)
    response["Content-Disposition"] = f'inline; filename="order-{proof.order_id}-{proof.kind}.{name.rsplit(".", 1)[-1]}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
