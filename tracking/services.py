"""Tracking links: one made for each order at intake, in its transaction; revoked by staff."""

import secrets
from datetime import datetime

from django.db import transaction

from audit.actors import Actor
from dispatch.after_commit import after_commit
from dispatch.models import Order
from dispatch.rows import rows_insert
from dispatch.services import order_audit_record
from tracking.links import tracking_token_for_nonce, tracking_token_hash
from tracking.models import TrackingLink
from tracking.notify import order_changed_send


def tracking_link_create(*, order: Order, now: datetime) -> str:
    """The order's tracking link, stored in the caller's transaction; returns its token, which
    is not stored (only its hash and the nonce it is made from)."""
    nonce = secrets.token_hex(16)
    token = tracking_token_for_nonce(nonce)
    rows_insert([TrackingLink(order=order, token_hash=tracking_token_hash(token), nonce=nonce, created_at=now)])
    return token


def tracking_link_revoke(*, order_id: int, reason: str, actor: Actor, now: datetime) -> bool:
    """Withdraw the order's tracking link: the page answers 410 from now on and open pages
    are told at once. False when it was withdrawn already or the order has none."""
    with transaction.atomic(durable=True):
        link = TrackingLink.objects.select_related("order").filter(order_id=order_id).first()
        if link is None or not TrackingLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=now, revoked_reason=reason[:255]):
            return False
        order_audit_record(link.order, "tracking.link_revoked", actor=actor, reason=reason[:255])
        after_commit(lambda: order_changed_send(order_id))
    return True
