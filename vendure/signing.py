"""The webhook signature: `X-Dispatch-Signature: t=<unix seconds>,v1=<hex>`.

hex is HMAC-SHA256 with the channel's shared secret over the bytes `<t>.<raw body>`.
Several `v1=` entries may be sent while a shop rotates its secret; any match is enough.
"""

import hashlib
import hmac
import time


class SignatureRefused(Exception):
    """Why a delivery is not trusted; the view answers 401 and stores nothing."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a shop sends (used by the simulator, the tests and the docs)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: int, now: float | None = None) -> None:
    now = time.time() if now is None else now
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        # ASCII digits only ("²" is a digit to str.isdigit() and not to int()), and no more
        # than a Unix time needs: a 5,000-digit one cannot even be converted.
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureRefused("X-Dispatch-Signature must be 't=<unix seconds>,v1=<hex>'")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureRefused(f"signature timestamp is more than {tolerance_s} s from now")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    # compare_digest on every candidate: the time taken says nothing about how close a guess was.
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    if not any(matches):
        raise SignatureRefused("signature does not match")
