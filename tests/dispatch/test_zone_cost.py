"""What a zone's geometry costs every later order: the vertices are bounded (see
tests/test_admin_input_bounds.py), and a known area is never decoded or re-encoded again."""

import json
import math
from unittest import mock

import pytest

from dispatch import limits, selectors
from tests.factories import ZoneFactory

pytestmark = pytest.mark.django_db


def circle(vertices: int, lat: float, lon: float, radius: float = 0.02) -> dict:
    ring = [[lon + radius * math.cos(2 * math.pi * k / vertices), lat + radius * math.sin(2 * math.pi * k / vertices)] for k in range(vertices)]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def test_placing_orders_in_zones_at_the_vertex_bound_decodes_no_geometry_after_the_first(django_assert_max_num_queries):
    # given three zones at the vertex bound, each placed once (its geometry prepared and cached)
    zones = [ZoneFactory(name=f"Zone {n}", slug=f"zone-{n}", area=circle(limits.ZONE_AREA_MAX_VERTICES - 1, 52.40 + n * 0.1, 13.40)) for n in range(3)]
    assert selectors.zone_for_dropoff(52.60, 13.40, "") == zones[2]
    # when fifty more orders are placed
    with mock.patch("json.loads", wraps=json.loads) as loads, mock.patch("json.dumps", wraps=json.dumps) as dumps, django_assert_max_num_queries(50):
        placed = [selectors.zone_for_dropoff(52.40 + (n % 3) * 0.1, 13.40, "") for n in range(50)]
    # then each lands in its zone, and no area was decoded or encoded again (one query each)
    assert placed == [zones[n % 3] for n in range(50)]
    # (the small postal-prefix lists are still decoded: a few bytes each)
    assert not [call for call in loads.call_args_list if len(call.args[0]) > 1_000]
    assert dumps.call_count == 0
