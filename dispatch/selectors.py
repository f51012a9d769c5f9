"""Reads shared by the webhook, the API, the sweeps and admin."""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from dispatch.geometry import bounding_box, great_circle_sql
from dispatch.models import Driver, Order, Reassignment, Zone
from dispatch.rows import columns_count, columns_sql, instance_from_row
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


@dataclass(frozen=True)
class DriverExclusion:
    """Drivers a candidate search leaves out: a condition in SQL text on the candidate row
    (alias `d`) with its parameters, written by the module that knows why (offers: a pending
    offer, an order's declines and lapses; this one: an order's reassignments)."""

    sql: str
    params: tuple[Any, ...] = ()


def drivers_reassigned_away_from(order_id: int) -> DriverExclusion:
    """Drivers this order was taken back from: never offered it again."""
    table = Reassignment._meta.db_table
    return DriverExclusion(f"EXISTS (SELECT 1 FROM {table} ra WHERE ra.order_id = %s AND ra.driver_id = d.id)", (order_id,))  # noqa: S608


def candidate_drivers(
    zone: Zone,
    pickup_lat: float,
    pickup_lon: float,
    now: datetime | None = None,
    exclude: Iterable[Collection[int] | DriverExclusion] = (),
    *,
    limit: int | None = None,
) -> list[Driver]:
    """Available drivers of the zone with free capacity and an active user account, best first;
    the first `limit` of them when a limit is given. `exclude`: ids, or conditions.

    A deactivated driver (user.is_active off) is never a candidate, whatever their availability
    says: neither offered an order (v2) nor assigned one (v1).

    Ranking: drivers with a recent position (younger than DISPATCH_POSITION_MAX_AGE_S) by
    distance to the pickup, nearest first; then drivers without one, idle longest first
    (oldest `idle_since`, never-idle first). Ties break on `idle_since` then the driver id, so
    the order is deterministic. Each driver carries `distance_m`, None without a fresh position.

    The database ranks and limits: with a limit, the nearest drivers are searched in growing
    boxes around the pickup through the index of available drivers' positions, so the cost
    follows the drivers near the pickup, not the zone's whole fleet. In SQL text: every
    decision (intake, each answer, each lapse) asks it, and the queryset cost 2-3 ms of CPU to
    build, more than the query itself.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    now = now or timezone.now()
    search = _CandidateSearch(zone, pickup_lat, pickup_lon, now, exclude)
    if limit is None:
        return search.everyone()
    if limit == 0:
        return []
    for box in range(_first_box_of_zone.get(zone.pk, 0), len(CANDIDATE_SEARCH_RADII_M)):
        radius_m = CANDIDATE_SEARCH_RADII_M[box]
        # Every driver within radius_m is in the box: when the limit-th nearest of the box is
        # within radius_m, these are the nearest of the whole zone. Otherwise a wider box.
        found = search.nearest_in_box(radius_m, limit)
        if len(found) == limit and found[-1].distance_m <= radius_m:  # type: ignore[attr-defined]
            _first_box_of_zone[zone.pk] = _box_holding(found[-1].distance_m)  # type: ignore[attr-defined]
            return found
    # Fewer than `limit` within the widest box: the whole zone, wherever they are.
    anywhere = search.anywhere(limit)
    farthest = anywhere[-1].distance_m if len(anywhere) == limit else None  # type: ignore[attr-defined]
    _first_box_of_zone[zone.pk] = _box_holding(farthest) if farthest is not None else len(CANDIDATE_SEARCH_RADII_M)
    return anywhere


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


# Best first: a fresh position by distance, then idle longest (never idle first), then the id.
_RANKING = "distance_m ASC NULLS LAST, d.idle_since ASC NULLS FIRST, d.id ASC"

# Code constants, written into the text (not parameters) so that PostgreSQL can match them
# with the partial index of available drivers' positions under a prepared statement's plan.
_AVAILABLE = Driver.Availability.AVAILABLE.value
assert _AVAILABLE.isidentifier()


class _CandidateSearch:
    """The candidate query of one search, in SQL text, asked of a box or of the whole zone."""

    def __init__(self, zone: Zone, lat: float, lon: float, now: datetime, exclude: Iterable[Collection[int] | DriverExclusion]) -> None:
        self.lat, self.lon = lat, lon
        user_table = get_user_model()._meta.db_table
        zones_table = Driver.zones.through._meta.db_table
        conditions = [f"d.availability = '{_AVAILABLE}'", Driver.free_capacity_sql("d"), "u.is_active = %s"]
        params: list[Any] = [zone.pk, True]
        for excluded in exclude:  # in the database: ids, or a condition on the driver row
            if isinstance(excluded, DriverExclusion):
                conditions.append(f"NOT ({excluded.sql})")
                params += excluded.params
            elif excluded:
                ids = list(excluded)
                conditions.append(f"d.id NOT IN ({', '.join(['%s'] * len(ids))})")
                params += ids
        self.base_sql = (
            f"FROM {Driver._meta.db_table} d JOIN {zones_table} dz ON dz.driver_id = d.id AND dz.zone_id = %s "
            f"JOIN {user_table} u ON u.id = d.user_id WHERE {' AND '.join(conditions)}"
        )
        self.base_params = params
        fresh_after = Driver._meta.get_field("last_position_at").get_db_prep_value(now - timedelta(seconds=settings.DISPATCH_POSITION_MAX_AGE_S), connection)
        self.fresh_sql = "d.last_lat IS NOT NULL AND d.last_lon IS NOT NULL AND d.last_position_at >= %s"
        self.stale_sql = "(d.last_lat IS NULL OR d.last_lon IS NULL OR d.last_position_at IS NULL OR d.last_position_at < %s)"
        self.fresh_params = [fresh_after]
        self.distance_sql, distance_params = great_circle_sql(lat, lon, "d.last_lat", "d.last_lon")
        self.distance_params = list(distance_params)

    def nearest_in_box(self, radius_m: float, limit: int) -> list[Driver]:
        """The nearest drivers with a fresh position inside the box around the pickup."""
        south, north, west, east = bounding_box(self.lat, self.lon, radius_m)
        box_sql, box_params = "d.last_lat >= %s AND d.last_lat <= %s", [south, north]
        if west is not None and east is not None:
            box_sql, box_params = f"{box_sql} AND d.last_lon >= %s AND d.last_lon <= %s", [*box_params, west, east]
        return self._drivers(
            f"SELECT {columns_sql(Driver, 'd')}, {self.distance_sql} AS distance_m {self.base_sql} AND {self.fresh_sql} AND {box_sql} "
            f"ORDER BY {_RANKING} LIMIT %s",
            [*self.distance_params, *self.base_params, *self.fresh_params, *box_params, limit],
        )

    def everyone(self) -> list[Driver]:
        """Everyone of the zone: a fresh position by distance first, then the others idle longest first."""
        return self._drivers(
            f"SELECT {columns_sql(Driver, 'd')}, CASE WHEN {self.fresh_sql} THEN {self.distance_sql} END AS distance_m {self.base_sql} ORDER BY {_RANKING}",
            [*self.fresh_params, *self.distance_params, *self.base_params],
        )

    def anywhere(self, limit: int) -> list[Driver]:
        """The first `limit` of `everyone`, as two searches each limited on its own: the nearest
        with a fresh position, and the others idle longest first, read in the order of their
        index (a fleet without positions costs what its first drivers cost, not the whole
        fleet: bench/offer_latency.py)."""
        nearest = f"SELECT {columns_sql(Driver, 'd')}, {self.distance_sql} AS distance_m {self.base_sql} AND {self.fresh_sql} ORDER BY {_RANKING} LIMIT %s"
        idle = (
            f"SELECT {columns_sql(Driver, 'd')}, CAST(NULL AS DOUBLE PRECISION) AS distance_m {self.base_sql} AND {self.stale_sql} "
            "ORDER BY d.idle_since ASC NULLS FIRST, d.id ASC LIMIT %s"
        )
        return self._drivers(
            f"SELECT * FROM ({nearest}) nearest UNION ALL SELECT * FROM ({idle}) idle ORDER BY {_RANKING.replace('d.', '')} LIMIT %s",  # noqa: S608
            [*self.distance_params, *self.base_params, *self.fresh_params, limit, *self.base_params, *self.fresh_params, limit, limit],
        )

    def _drivers(self, sql: str, params: list[Any]) -> list[Driver]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        drivers = []
        distance_at = columns_count(Driver)
        for row in rows:
            driver = instance_from_row(Driver, row)
            driver.distance_m = row[distance_at]  # type: ignore[attr-defined]
            drivers.append(driver)
        return drivers


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


def orders_carried_by(driver_id: int) -> list[Order]:
    """The orders this driver has picked up and not yet delivered (or failed)."""
    return list(Order.objects.filter(driver_id=driver_id, status=Order.Status.PICKED_UP))
