"""Who may look a tracking link up: every lookup counts against the client's address, and a
lookup that finds no live link (a guess, most likely) counts twice. Shared by the page, its
JSON and the tracking socket, so a guesser gains nothing by switching between them."""

from django.conf import settings
from django.utils import timezone

from dispatch.ratelimit import address_over_limit
from tracking.selectors import LinkLookup, tracking_link_lookup


def tracking_lookup_limited(address: str, token: str) -> LinkLookup:
    """The link behind `token`, counted against the client's address: a client past its limit
    (all lookups, or lookups that found no live link: guesses) gets "limited" and nothing else."""
    if address_over_limit(scope="tracking", address=address, limit=settings.DISPATCH_TRACKING_LOOKUPS_PER_MINUTE):
        return LinkLookup("limited")
    lookup = tracking_link_lookup(token, timezone.now())
    if lookup.status != "ok" and address_over_limit(scope="tracking-miss", address=address, limit=settings.DISPATCH_TRACKING_MISSES_PER_MINUTE):
        return LinkLookup("limited")
    return lookup
