"""Reads shared by the webhook, the API, the sweeps and admin."""

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Case, Exists, F, FloatField, Q, QuerySet, When
from django.utils import timezone

from dispatch.geometry import GreatCircleDistance, bounding_box
from dispatch.models import Driver, Order, Zone
from dispatch.zone_index import zone_index


def zone_for_point(lat: float, lon: float) -> Zone | None:
    """The active zone whose area covers the point; the first by name when areas overlap.

    Found in this process's zone index (dispatch.zone_index): one read of the zones' version,
    then an STRtree, whatever the number of zones and their vertices.
    """
    return zone_index().zone_at(lat, lon)


def zone_for_postal_code(postal_code: str) -> Zone | None:
    """The active zone with the longest postal-code prefix matching the code."""
    if not postal_code.strip():
        return None
    return zone_index().zone_for_postal_code(postal_code)


def zone_for_dropoff(lat: float | None, lon: float | None, postal_code: str) -> Zone | None:
    """Coordinates decide when the shop sent them; the postal code otherwise."""
    index = zone_index()  # one version read serves both lookups
    if lat is not None and lon is not None:
        zone = index.zone_at(lat, lon)
        if zone is not None:
            return zone
    if not postal_code.strip():
        return None
    return index.zone_for_postal_code(postal_code)


def candidate_drivers(
    zone: Zone,
    pickup_lat: float,
    pickup_lon: float,
    now: datetime | None = None,
    exclude: Iterable[Collection[int] | QuerySet[Any] | Exists] = (),
    *,
    limit: int | None = None,
) -> list[Driver]:
    """Available drivers of the zone with free capacity and an active user account, best first;
    the first `limit` of them when a limit is given.

    A deactivated driver (user.is_active off) is never a candidate, whatever their availability
    says: neither offered an order (v2) nor assigned one (v1).

    Ranking: drivers with a recent position (younger than DISPATCH_POSITION_MAX_AGE_S) by
    distance to the pickup, nearest first; then drivers without one, idle longest first
    (oldest `idle_since`, never-idle first). Ties break on `idle_since` then the driver id, so
    the order is deterministic. Each driver carries `distance_m`, None without a fresh position.

    The database ranks and limits: with a limit, the nearest drivers are searched in growing
    boxes around the pickup through the index of available drivers' positions, so the cost
    follows the drivers near the pickup, not the zone's whole fleet.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    now = now or timezone.now()
    fresh_after = now - timedelta(seconds=settings.DISPATCH_POSITION_MAX_AGE_S)
    candidates = Driver.objects.filter(zones=zone, availability=Driver.Availability.AVAILABLE, active_order_count__lt=F("capacity"), user__is_active=True)
    for excluded in exclude:  # ids, subqueries of ids, or a condition on the driver: excluded in the database
        candidates = candidates.exclude(excluded) if isinstance(excluded, Exists) else candidates.exclude(pk__in=excluded)
    candidates = candidates.only("pk", "name", "idle_since", "last_lat", "last_lon", "last_position_at", "app_version", "v2_connected_at")
    has_fresh_position = Q(last_lat__isnull=False, last_lon__isnull=False, last_position_at__gte=fresh_after)
    distance = GreatCircleDistance(pickup_lat, pickup_lon, "last_lat", "last_lon")
    idle_longest_first = (F("idle_since").asc(nulls_first=True), "pk")
    # Everyone of the zone: those with a fresh position by distance, then the others idle longest first.
    everyone = candidates.annotate(distance_m=Case(When(has_fresh_position, then=distance), output_field=FloatField())).order_by(
        F("distance_m").asc(nulls_last=True), *idle_longest_first
    )
    if limit is None:
        return list(everyone)
    if limit == 0:
        return []
    nearest = candidates.filter(has_fresh_position).annotate(distance_m=distance).order_by("distance_m", *idle_longest_first)
    for box in range(_first_box_of_zone.get(zone.pk, 0), len(CANDIDATE_SEARCH_RADII_M)):
        radius_m = CANDIDATE_SEARCH_RADII_M[box]
        # Every driver within radius_m is in the box: when the limit-th nearest of the box is
        # within radius_m, these are the nearest of the whole zone. Otherwise a wider box.
        found = list(nearest.filter(_box(pickup_lat, pickup_lon, radius_m))[:limit])
        if len(found) == limit and found[-1].distance_m <= radius_m:
            _first_box_of_zone[zone.pk] = _box_holding(found[-1].distance_m)
            return list(found)
    # Fewer than `limit` within the widest box: the whole zone, wherever they are.
    anywhere = list(everyone[:limit])
    farthest = anywhere[-1].distance_m if len(anywhere) == limit else None
    _first_box_of_zone[zone.pk] = _box_holding(farthest) if farthest is not None else len(CANDIDATE_SEARCH_RADII_M)
    return list(anywhere)


# Radii of the boxes searched for the nearest drivers, smallest first: a city's dense centre is
# answered by the first, a sparse outskirt by a later one, a zone with very few drivers with
# a position by the query of the whole zone.
CANDIDATE_SEARCH_RADII_M = (1_000.0, 4_000.0, 16_000.0)

# Per process and zone, the box that would have answered the zone's last search (or
# len(CANDIDATE_SEARCH_RADII_M): none, the whole zone did): where its next search starts, so
# a sparse zone is not asked its boxes in vain every time. It only decides where a search
# starts, never what it finds (every box holds its whole circle, and the whole zone holds
# everyone), so a process that never saw the zone, or saw it differently, finds the same drivers.
_first_box_of_zone: dict[int, int] = {}


def _box_holding(distance_m: float) -> int:
    """The smallest box whose circle holds this distance (len(radii) when none does)."""
    return next((n for n, radius_m in enumerate(CANDIDATE_SEARCH_RADII_M) if radius_m >= distance_m), len(CANDIDATE_SEARCH_RADII_M))


def _box(lat: float, lon: float, radius_m: float) -> Q:
    south, north, west, east = bounding_box(lat, lon, radius_m)
    box = Q(last_lat__gte=south, last_lat__lte=north)
    if west is not None and east is not None:
        box &= Q(last_lon__gte=west, last_lon__lte=east)
    return box


def orders_waiting_for_driver() -> QuerySet[Order]:
    """Orders waiting for a driver, oldest first: what the assignment sweep works through."""
    return Order.objects.filter(status__in=Order.WAITING_STATUSES).exclude(offers__state="pending").order_by("received_at", "pk")


def orders_wait_in_zones_of(driver_id: int) -> bool:
    """Whether any order waits for a driver in the driver's zones: a driver who got capacity
    back is worth a worker's time only then (whether anyone offered it yet aside). Asked
    after every delivery: in SQL text."""
    orders, zones = Order._meta.db_table, Driver.zones.through._meta.db_table
    waiting = list(Order.WAITING_STATUSES)
    statuses = ", ".join(["%s"] * len(waiting))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {orders} WHERE status IN ({statuses}) AND zone_id IN (SELECT zone_id FROM {zones} WHERE driver_id = %s) LIMIT 1",  # noqa: S608 (names only)
            [*waiting, driver_id],
        )
        return cursor.fetchone() is not None


def driver_current_orders(driver: Driver) -> QuerySet[Order]:
    return Order.objects.filter(driver=driver, status__in=Order.ACTIVE_STATUSES).select_related("channel", "zone").order_by("assigned_at", "pk")
