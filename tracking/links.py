"""A tracking link's token, made from a random nonce under the tracking key, and its URL.

The token is never stored: the database holds its SHA-256 (to find the link) and the nonce
(to make the token again for staff and the shop). Without the key a copy of the database
gives no working link.
"""

import base64
import hashlib
import hmac
from typing import Any

from django.conf import settings

TOKEN_BYTES = 24  # 192 bits of an HMAC-SHA256: guessing one of a billion live links is hopeless


def _tracking_key() -> bytes:
    configured = settings.DISPATCH_TRACKING_KEY
    if configured:
        return configured.encode()
    # A key of its own, derived from SECRET_KEY: no other use of SECRET_KEY can produce a token.
    return hashlib.sha256(b"dispatch.tracking-link.v1|" + settings.SECRET_KEY.encode()).digest()


def tracking_token_for_nonce(nonce: str) -> str:
    digest = hmac.new(_tracking_key(), nonce.encode(), hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.urlsafe_b64encode(digest).decode()  # 24 bytes: 32 characters, no padding


def tracking_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tracking_url(token: str) -> str:
    return f"{settings.DISPATCH_PUBLIC_URL.rstrip('/')}/t/{token}/"


def tracking_link_token(link: Any) -> str | None:
    """The token of a stored link (a TrackingLink), made again from its nonce; None when the
    tracking key changed since (the stored hash no longer matches: that link is dead)."""
    token = tracking_token_for_nonce(link.nonce)
    return token if hmac.compare_digest(tracking_token_hash(token), link.token_hash) else None


def tracking_token_is_current(link: Any, token: str) -> bool:
    """Whether `token` is the link's token under today's tracking key: a link made under an
    earlier key (changed after a leak, say) no longer opens anything."""
    return hmac.compare_digest(tracking_token_for_nonce(link.nonce), token)
