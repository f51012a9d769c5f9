"""Distances and zone membership. Zone areas are GeoJSON, tested with shapely (no GDAL).

Distances exist twice, the same haversine formula: in Python (distance_m), and as SQL the
database computes (great_circle_sql), so a query can rank and limit by it.
"""

import json
import math
from functools import lru_cache
from typing import Any

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Expression, ExpressionWrapper, FloatField, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import ASin, Cos, Least, Power, Radians, Sin, Sqrt
from django.db.models.sql import Query
from django.db.models.sql.compiler import SQLCompiler
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.prepared import PreparedGeometry, prep

EARTH_RADIUS_M = 6_371_000.0


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def great_circle_sql(lat: float, lon: float, lat_column: str, lon_column: str) -> tuple[str, tuple[Any, ...]]:
    """distance_m() from (lat, lon) to a row's latitude and longitude columns, as SQL text and
    its parameters, so a statement (the candidate search) can rank and limit by it.

    The formula is written with Django's math functions (PostgreSQL has them; Django adds them
    to SQLite, the embedded default), but compiled once per database vendor, not per query:
    compiling its two dozen nodes cost about 2 ms of Python on every candidate query, more
    than the query itself. Each query only puts its columns and the point into that SQL.
    """
    vendor = connection.vendor
    if vendor not in _haversine_sql:
        _haversine_sql[vendor] = Query(None).get_compiler(connection=connection).compile(_haversine())
    sql, params = _haversine_sql[vendor]
    phi = math.radians(lat)
    point = {_PHI: phi, _COS_PHI: math.cos(phi), _LAMBDA: math.radians(lon)}
    return sql.replace(_LAT_COLUMN, lat_column).replace(_LON_COLUMN, lon_column), tuple(point.get(p, p) for p in params)


_LAT_COLUMN, _LON_COLUMN = "__latitude_column__", "__longitude_column__"
_PHI, _COS_PHI, _LAMBDA = "__phi__", "__cos_phi__", "__lambda__"
# The compiled formula per vendor: SQL with the column markers in it, and its parameters
# (numbers, or the names of the point's values).
_haversine_sql: dict[str, tuple[str, tuple[Any, ...]]] = {}


class _Hole(Expression):
    """A place in the compiled formula filled by each query: a column, or one of the point's values."""

    output_field = FloatField()

    def __init__(self, name: str, *, is_column: bool) -> None:
        super().__init__()
        self.name, self.is_column = name, is_column

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        return (self.name, ()) if self.is_column else ("%s", (self.name,))


def _haversine() -> Expression:
    lat, lon = _Hole(_LAT_COLUMN, is_column=True), _Hole(_LON_COLUMN, is_column=True)
    phi1, cos_phi1, lambda1 = (_Hole(name, is_column=False) for name in (_PHI, _COS_PHI, _LAMBDA))
    dphi: Combinable = Radians(lat) - phi1
    dlmb: Combinable = Radians(lon) - lambda1
    a = Power(Sin(dphi / Value(2.0)), Value(2.0)) + cos_phi1 * Cos(Radians(lat)) * Power(Sin(dlmb / Value(2.0)), Value(2.0))
    # Rounding can carry `a` a hair above 1 for a point at the antipode: ASIN would then be a
    # domain error in PostgreSQL, failing the whole query rather than one distance.
    return ExpressionWrapper(Value(2 * EARTH_RADIUS_M) * ASin(Least(Sqrt(a), Value(1.0))), output_field=FloatField())


def bounding_box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float | None, float | None]:
    """(south, north, west, east) in degrees of a box holding every point within radius_m of
    (lat, lon): a filter an index can serve before distances are computed. West and east are
    None when the circle reaches a pole or crosses the antimeridian (any longitude then).
    """
    # A hair wider than the circle: a point just inside the radius must never be cut by rounding.
    angle = radius_m / EARTH_RADIUS_M * 1.001
    south, north = lat - math.degrees(angle), lat + math.degrees(angle)
    if south <= -90 or north >= 90:
        return max(south, -90.0), min(north, 90.0), None, None
    # The widest longitude span of a circle on the sphere (it is reached north or south of
    # the centre, not at its latitude).
    spread = math.sin(angle) / math.cos(math.radians(lat))
    if spread >= 1:
        return south, north, None, None
    dlon = math.degrees(math.asin(spread))
    west, east = lon - dlon, lon + dlon
    if west < -180 or east > 180:
        return south, north, None, None
    return south, north, west, east


def parse_area(geojson: dict) -> BaseGeometry:
    """Shapely geometry of a GeoJSON Polygon or MultiPolygon; ValueError when it is not one."""
    kind = geojson.get("type") if isinstance(geojson, dict) else None
    if kind == "Feature":
        return parse_area(geojson.get("geometry") or {})
    if kind not in ("Polygon", "MultiPolygon"):
        raise ValueError("the zone area must be a GeoJSON Polygon or MultiPolygon")
    try:
        geometry = shape(geojson)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"the zone area is not valid GeoJSON: {exc}") from exc
    if geometry.is_empty or not geometry.is_valid:
        raise ValueError("the zone area is empty or self-intersecting")
    return geometry


# Keyed by the area's JSON text, so an edited area is a new key in every process at once.
@lru_cache(maxsize=256)
def _prepared(area_json: str) -> PreparedGeometry:
    return prep(parse_area(json.loads(area_json)))


def area_contains(area: dict, lat: float, lon: float) -> bool:
    """Whether the point lies in the area. GeoJSON orders coordinates longitude first."""
    return area_json_contains(json.dumps(area, sort_keys=True), lat, lon)


def area_json_contains(area_json: str, lat: float, lon: float) -> bool:
    """The same, from the area's JSON text as the database gives it: decoding a large area and
    encoding it again for the cache key would cost every order milliseconds per zone."""
    return bool(_prepared(area_json).covers(Point(lon, lat)))
