"""`POST /api/v2/orders/<id>/proof/<kind>/`: a photo or signature for the driver's own order."""

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from dispatch.api import DriverAPIView, errors
from dispatch.errors import InvalidInput, error_body
from proof import services


class ProofSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    size_bytes = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    sha256 = serializers.CharField()


@extend_schema(tags=["v2"])
class ProofUploadView(DriverAPIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="v2_order_proof",
        request={"multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
        responses={
            201: ProofSerializer,
            **errors(400, 401, 403, 404, 409, 413, 415, described_as={413: "The image is too large", 415: "The body is not a readable multipart/form-data"}),
        },
    )
    def post(self, request: Request, order_id: int, kind: str) -> Response:
        """Attach a photo at the door (`photo`) or the customer's signature (`signature`) to your
        order, picked up or delivered: a JPEG, PNG or WebP, kept without its metadata."""
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > settings.DISPATCH_PROOF_MAX_BYTES + 64 * 1024:  # the file and the form's framing
            return Response(error_body("body_too_large", f"An image is at most {settings.DISPATCH_PROOF_MAX_BYTES} bytes."), status=413)
        upload = request.FILES.get("file")
        if upload is None:
            raise InvalidInput("Send the image as the multipart field 'file'.", field="file")
        proof = services.proof_attach(order_id=order_id, driver=self.driver, kind=kind, upload=upload, now=timezone.now())
        return Response(ProofSerializer(proof).data, status=201)
