"""Is a v2 feature on for this driver, at this decision?"""

import hashlib

from django.conf import settings
from django.db import connection
from waffle.models import Switch

from dispatch.models import Driver
from rollout.models import Feature, RolloutPolicy


def switch_is_on(feature: str, *, hold_until_commit: bool = False) -> bool:
    """Whether the feature's kill-switch is on, read from the database at every decision.

    Never through waffle's cache: that cache lives in each process unless it is shared, and
    even a shared one can be refilled with the old value by a reader racing the flip. One
    indexed read is cheap enough for each decision (bench/switch_read.py).

    `hold_until_commit` (inside the decision's transaction) takes a share lock on the switch's
    row: a flip (an UPDATE of that row) waits for the decisions already under way to commit,
    and every decision after the flip commits reads the new value. So no offer made on an old
    reading of the switch can commit after the flip did.
    """
    if hold_until_commit and connection.features.has_select_for_update:
        # Django has no FOR SHARE; the row lock of a plain SELECT ... FOR SHARE is what's needed.
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT active FROM {Switch._meta.db_table} WHERE name = %s FOR SHARE", [feature])  # noqa: S608 (table name from the model)
            row = cursor.fetchone()
        return bool(row and row[0])
    return bool(Switch.objects.filter(name=feature).values_list("active", flat=True).first())


def switch_and_share_held(feature: str) -> tuple[bool, int]:
    """The feature's switch (share-locked until commit, as `switch_is_on(hold_until_commit=True)`)
    and its rollout percentage, in one statement: what each dispatch decision reads."""
    if not connection.features.has_select_for_update:
        return switch_is_on(feature), rollout_percentage(feature)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.active, r.percentage FROM {Switch._meta.db_table} s LEFT JOIN {RolloutPolicy._meta.db_table} r ON r.feature = s.name "  # noqa: S608 (table names from the models)
            "WHERE s.name = %s FOR SHARE OF s",
            [feature],
        )
        row = cursor.fetchone()
    if row is None:
        return False, 0
    return bool(row[0]), int(row[1] or 0)


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
    if not switch_checked and not switch_is_on(feature):
        return False
    return why_feature_off_for(feature, driver, percentage=rollout_percentage(feature) if percentage is None else percentage) is None


# Why a feature is off for a driver whose switch is on (the decision trace shows it).
NOT_IN_ROLLOUT = "not_in_rollout"
APP_SPEAKS_V1 = "app_speaks_v1"


def why_feature_off_for(feature: str, driver: Driver, *, percentage: int) -> str | None:
    """None when the feature (its switch on) applies to the driver; else why not."""
    if rollout_bucket(feature, driver.pk) >= percentage:
        return NOT_IN_ROLLOUT
    if feature not in SERVER_SIDE_FEATURES and not speaks_v2(driver):
        return APP_SPEAKS_V1
    return None
