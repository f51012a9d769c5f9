"""Requests counted per client address across every process, in the shared cache.

Django's cache API over Redis in production (`CACHES["shared"]`): INCR is atomic there, so
every ASGI process counts into one counter; the embedded default is one process and counts in
its memory. A cache that cannot be reached lets the request through (logged): a limit is a
brake on guessing, not a reason to take pages down.
"""

import logging
import time

from django.core.cache import caches

logger = logging.getLogger(__name__)


def address_over_limit(*, scope: str, address: str, limit: int, window_s: int = 60) -> bool:
    """Count one request from `address` in `scope`; True once it has made more than `limit`
    in the current window of `window_s` seconds (fixed windows)."""
    cache = caches["shared"]
    key = f"ratelimit:{scope}:{address}:{int(time.time()) // window_s}"
    try:
        cache.add(key, 0, timeout=window_s + 5)
        count = cache.incr(key)
    except ValueError:  # the window's key expired between add and incr
        return False
    except Exception:
        logger.warning("rate limit not applied: the shared cache is unreachable", exc_info=True)
        return False
    return int(count) > limit
