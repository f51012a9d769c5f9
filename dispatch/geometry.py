"""Distances and zone membership. Zone areas are GeoJSON, tested with shapely (no GDAL)."""

import json
import math
from functools import lru_cache

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
