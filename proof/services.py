"""A driver attaches proof of delivery to their order: checked and cleaned first, stored, then
recorded with its audit event under the order's lock."""

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime
from typing import IO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from dispatch.errors import IllegalTransition, NotFound
from dispatch.locks import order_lock
from dispatch.models import Driver, Order
from dispatch.rows import rows_insert
from dispatch.services import driver_actor, order_audit_record
from proof.errors import HandoverCodeLocked, HandoverCodeRequired, HandoverCodeWrong
from proof.images import image_cleaned
from proof.models import DeliveryProof, HandoverCode

S = Order.Status
# A proof belongs to a delivery under way or just made (the photo is often sent right after).
STATUSES_TAKING_PROOF = (S.PICKED_UP, S.DELIVERED)


def proof_attach(*, order_id: int, driver: Driver, kind: str, upload: IO[bytes], now: datetime) -> DeliveryProof:
    """Attach a photo or a signature to the driver's own order (picked up or delivered). The
    image is checked and re-encoded before anything is written; a refusal stores nothing."""
    if kind not in DeliveryProof.Kind.values:
        raise NotFound(f"no proof kind {kind!r}")  # the URL names the kind
    order = Order.objects.filter(pk=order_id).only("driver_id", "status").first()
    if order is None or order.driver_id != driver.pk:
        raise NotFound(f"order {order_id} not found")  # checked before any image is decoded (and again under the lock)
    if order.status not in STATUSES_TAKING_PROOF:
        raise IllegalTransition(f"order {order_id}", order.status, "proven")
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


# --- Handover codes ----------------------------------------------------------------------


def handover_code_create(*, order: Order, now: datetime) -> str | None:
    """In the intake's transaction: a 4-digit code when the order's shop or zone requires one
    (the customer sees it on their tracking page); None when neither does."""
    zone_requires = order.zone is not None and order.zone.requires_handover_code
    if not (order.channel.requires_handover_code or zone_requires):
        return None
    code = f"{secrets.randbelow(10_000):04d}"
    rows_insert([HandoverCode(order=order, code=code, created_at=now)])
    return code


def handover_code_check(*, order_id: int, driver: Driver, code: str | None, now: datetime) -> None:
    """Before the driver's delivery of their order: the handover code, when one is required.

    Judged and counted in a transaction of its own, under the code's row lock: a wrong code
    is counted, and audited, and stands although the delivery is refused (HandoverCodeWrong, with the attempts left); at
    DISPATCH_HANDOVER_MAX_ATTEMPTS no code is taken any more (HandoverCodeLocked) and the order
    escalates (handover_code_failed). Another driver's order is left to the delivery to refuse.
    """
    allowed = settings.DISPATCH_HANDOVER_MAX_ATTEMPTS
    with transaction.atomic(durable=True):
        # Under the code's row lock: concurrent tries are judged one after another, each seeing
        # the attempts the others used, so no burst of guesses gets past the limit.
        required = HandoverCode.objects.select_for_update().filter(order_id=order_id, order__driver_id=driver.pk).first()
        if required is None or required.confirmed_at is not None:
            return
        if required.failed_attempts >= allowed:
            raise HandoverCodeLocked("Too many wrong handover codes: ops will resolve this order.", attempts_left=0)
        if not code:
            raise HandoverCodeRequired(
                "This order is handed over against the customer's code: ask them for it.", attempts_left=allowed - required.failed_attempts
            )
        if hmac.compare_digest(code.encode(), required.code.encode()):
            HandoverCode.objects.filter(pk=required.pk).update(confirmed_at=now)
            return
        failed = required.failed_attempts + 1
        HandoverCode.objects.filter(pk=required.pk).update(failed_attempts=failed)
        order = Order.objects.get(pk=order_id)
        order_audit_record(order, "order.handover_code_wrong", actor=driver_actor(driver), attempts_left=allowed - failed)
    if failed >= allowed:
        raise HandoverCodeLocked("Too many wrong handover codes: ops will resolve this order.", attempts_left=0)
    raise HandoverCodeWrong(f"Wrong handover code: {allowed - failed} attempt(s) left.", attempts_left=allowed - failed)
