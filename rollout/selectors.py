"""Is a v2 feature on for this driver, at this decision?"""

import hashlib

from django.conf import settings
from waffle import switch_is_active

from dispatch.models import Driver
from rollout.models import Feature, RolloutPolicy


def rollout_bucket(feature: str, driver_id: int) -> int:
    """0..99, stable for a driver and a feature (and independent across features)."""
    digest = hashlib.sha256(f"{feature}:{driver_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def rollout_percentage(feature: str) -> int:
    return RolloutPolicy.objects.filter(feature=feature).values_list("percentage", flat=True).first() or 0


def app_version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.strip().split("."):
        # ASCII digits only: "²" is a digit to str.isdigit() and not to int(), and this runs
        # in every dispatch decision about the driver.
        digits = "".join(ch for ch in part if ch in "0123456789")[:9]
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def speaks_v2(driver: Driver) -> bool:
    """A driver whose app has opened the v2 socket and is not older than the v2 minimum."""
    if driver.v2_connected_at is None:
        return False
    if driver.app_version:
        return app_version_tuple(driver.app_version) >= app_version_tuple(settings.DISPATCH_V2_MIN_APP_VERSION)
    return True


# Features decided on the server alone, which work whatever app the driver runs: taking an
# order back needs nothing from the app (a v1 app simply no longer lists it).
SERVER_SIDE_FEATURES = {Feature.AUTO_REASSIGN}


def feature_enabled_for(feature: str, driver: Driver, *, percentage: int | None = None, switch_checked: bool = False) -> bool:
    """Switch on, driver in the rollout share, and (for features the app takes part in) an
    app that speaks v2."""
    if not switch_checked and not switch_is_active(feature):
        return False
    share = rollout_percentage(feature) if percentage is None else percentage
    if rollout_bucket(feature, driver.pk) >= share:
        return False
    return feature in SERVER_SIDE_FEATURES or speaks_v2(driver)
