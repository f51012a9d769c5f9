"""Which active zone covers a point, or matches a postal code, without testing every zone.

Each process keeps an index of the active zones: an STRtree over their areas and a map of
their postal-code prefixes. Before every lookup it reads the zones' version, one row the
database's triggers replace on any insert, change or delete of a zone (dispatch.models.
ZoneVersion), and rebuilds the index when the version is not the one it was built at. So a
lookup costs one primary-key read plus work that does not grow with the number of zones or
their vertices, and an edit made by any process is seen by the next lookup of every process.
"""

import copy
import json
import logging
import threading
from typing import Any
from uuid import UUID

from django.db.models import TextField
from django.db.models.functions import Cast
from shapely import STRtree
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from dispatch.geometry import parse_area
from dispatch.models import Zone, ZoneVersion
from dispatch.rows import rows_read

logger = logging.getLogger(__name__)

# Every column but the area, which stays in the index as geometry: a zone is handed out as
# a fresh instance with its area deferred, as a queryset with .defer("area") would give it.
_COLUMNS = [field.attname for field in Zone._meta.concrete_fields if field.name != "area"]


def postal_code_normalized(code: str) -> str:
    """Postal codes and prefixes compare without spaces and case: "10 115" is "10115"."""
    return code.replace(" ", "").upper()


class ZoneIndex:
    """The active zones of one version, by area and by postal prefix, in name order."""

    def __init__(self, version: UUID | None, rows: list[tuple[Any, ...]], previous: "ZoneIndex | None" = None) -> None:
        self.version = version
        self._rows = rows  # the _COLUMNS of each zone, then its area as JSON text; by name, then id
        # Areas unchanged since the previous index are not decoded again.
        known = previous._geometry_by_area if previous is not None else {}
        self._geometry_by_area: dict[str, BaseGeometry] = {}
        geometries, self._zone_of_geometry = [], []
        for position, row in enumerate(rows):
            area_json = row[-1]
            if area_json is None:
                continue
            geometry = known[area_json] if area_json in known else self._geometry(row)
            if geometry is None:
                continue
            self._geometry_by_area[area_json] = geometry
            geometries.append(geometry)
            self._zone_of_geometry.append(position)
        self._tree = STRtree(geometries)
        self._zone_of_prefix: dict[str, int] = {}
        prefixes_at = _COLUMNS.index("postal_code_prefixes")
        for position, row in enumerate(rows):
            prefixes = row[prefixes_at] if isinstance(row[prefixes_at], list) else []  # a list, unless written past validation
            for prefix in prefixes:
                key = postal_code_normalized(prefix) if isinstance(prefix, str) else ""
                if key:
                    self._zone_of_prefix.setdefault(key, position)  # the first zone by name keeps a shared prefix
        self._longest_prefix = max(map(len, self._zone_of_prefix), default=0)

    @staticmethod
    def _geometry(row: tuple[Any, ...]) -> BaseGeometry | None:
        try:
            return parse_area(json.loads(row[-1]))
        except ValueError as exc:
            # Admin validates areas; one written past it (SQL, a queryset update) must not stop
            # every order of every zone from being placed. The zone is left out until fixed.
            logger.error("zone %s has an area that is not a polygon, left out of the zone index: %s", row[_COLUMNS.index("id")], exc)
            return None

    def zone_at(self, lat: float, lon: float) -> Zone | None:
        """The zone whose area covers the point (borders included); the first by name when
        areas overlap. GeoJSON orders coordinates longitude first."""
        # The tree narrows to the areas whose bounds hold the point, then tests those exactly.
        hits = self._tree.query(Point(lon, lat), predicate="covered_by")
        if not len(hits):
            return None
        return self._zone(self._zone_of_geometry[int(hits.min())])

    def zone_for_postal_code(self, postal_code: str) -> Zone | None:
        """The zone with the longest prefix of the postal code, the first by name on a tie."""
        code = postal_code_normalized(postal_code)
        for length in range(min(len(code), self._longest_prefix), 0, -1):
            position = self._zone_of_prefix.get(code[:length])
            if position is not None:
                return self._zone(position)
        return None

    def _zone(self, position: int) -> Zone:
        # A new instance for every caller, its lists copied: nothing a caller does to it can
        # reach the index or another caller.
        return Zone.from_db(Zone.objects.db, _COLUMNS, copy.deepcopy(self._rows[position][:-1]))


_current: ZoneIndex | None = None
_rebuilding = threading.Lock()


def zone_index() -> ZoneIndex:
    """This process's index of the active zones, rebuilt first if any zone changed anywhere."""
    global _current
    version = next((row.token for row in rows_read(ZoneVersion, id=1)), None)  # every intake asks: in SQL text
    index = _current
    if index is not None and index.version == version:
        return index
    with _rebuilding:  # one thread rebuilds; the others wait for its index rather than build their own
        index = _current
        if index is None or index.version != version:
            # Read after the version, so the rows are at least as new as the version they are
            # filed under: at worst an index is rebuilt once more, never kept stale.
            rows = list(
                Zone.objects.filter(is_active=True).order_by("name", "pk").annotate(area_json=Cast("area", TextField())).values_list(*_COLUMNS, "area_json")
            )
            index = _current = ZoneIndex(version, rows, previous=index)
    return index
