"""A driver attaches proof of delivery to their order: checked and cleaned first, stored, then
recorded with its audit event under the order's lock."""

import hashlib
import uuid
from datetime import datetime
from typing import IO

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from dispatch.errors import IllegalTransition, NotFound
from dispatch.locks import order_lock
from dispatch.models import Driver, Order
from dispatch.services import driver_actor, order_audit_record
from proof.images import image_cleaned
from proof.models import DeliveryProof

S = Order.Status
# A proof belongs to a delivery under way or just made (the photo is often sent right after).
STATUSES_TAKING_PROOF = (S.PICKED_UP, S.DELIVERED)


def proof_attach(*, order_id: int, driver: Driver, kind: str, upload: IO[bytes], now: datetime) -> DeliveryProof:
    """Attach a photo or a signature to the driver's own order (picked up or delivered). The
    image is checked and re-encoded before anything is written; a refusal stores nothing."""
    if kind not in DeliveryProof.Kind.values:
        raise NotFound(f"no proof kind {kind!r}")  # the URL names the kind
    cleaned = image_cleaned(upload, keep_transparency=kind == DeliveryProof.Kind.SIGNATURE)
    name = default_storage.save(f"proofs/{order_id}/{kind}-{uuid.uuid4().hex}.{cleaned.extension}", ContentFile(cleaned.data))
    try:
        with transaction.atomic(durable=True):
            order = order_lock(order_id)
            if order is None or order.driver_id != driver.pk:
                raise NotFound(f"order {order_id} not found")  # another driver's order does not exist for them
            if order.status not in STATUSES_TAKING_PROOF:
                raise IllegalTransition(f"order {order_id}", order.status, "proven")
            proof = DeliveryProof.objects.create(
                order=order,
                driver=driver,
                kind=kind,
                file=name,
                content_type=cleaned.content_type,
                size_bytes=len(cleaned.data),
                width=cleaned.width,
                height=cleaned.height,
                sha256=hashlib.sha256(cleaned.data).hexdigest(),
                uploaded_at=now,
            )
            order_audit_record(order, "order.proof_attached", actor=driver_actor(driver), proof=proof.pk, proof_kind=kind, sha256=proof.sha256)
    except BaseException:
        default_storage.delete(name)  # nothing recorded: nothing kept
        raise
    return proof
