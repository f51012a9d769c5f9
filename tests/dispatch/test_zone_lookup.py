"""Placing a drop-off in its zone (dispatch.selectors.zone_for_*) through each process's zone
index, and the index following every edit of a zone, made in this process or any other."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import httpx
import psycopg
import pytest
from django.db import connection

from dispatch import selectors
from dispatch.models import Order, Zone, ZoneVersion
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import ready_event
from tests.live.servers import uvicorn_servers
from vendure import sample_payloads

ROOT = Path(__file__).resolve().parents[2]


def box(west, south, east, north):
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]}


def zone(name, area=None, prefixes=(), **fields):
    return ZoneFactory(name=name, slug=name.lower().replace(" ", "-"), area=area, postal_code_prefixes=list(prefixes), **fields)


@pytest.mark.django_db
class TestPlacing:
    def test_a_point_goes_to_the_zone_covering_it_the_first_by_name_where_areas_overlap(self):
        bravo = zone("Bravo", box(13.0, 52.0, 13.2, 52.2))
        alpha = zone("Alpha", box(13.1, 52.1, 13.3, 52.3))
        zone("Aardvark", box(13.0, 52.0, 13.3, 52.3), is_active=False)
        zone("Postal only", None, ["1"])
        assert selectors.zone_for_point(52.15, 13.15) == alpha  # in both
        assert selectors.zone_for_point(52.05, 13.05) == bravo
        assert selectors.zone_for_point(52.25, 13.25) == alpha
        assert selectors.zone_for_point(52.0, 13.0) == bravo  # a corner: borders belong to the zone
        assert selectors.zone_for_point(52.25, 13.05) is None
        assert selectors.zone_for_point(float("nan"), 13.1) is None

    def test_a_zone_of_several_polygons_or_with_a_hole_covers_only_its_parts(self):
        islands = zone(
            "Islands",
            {
                "type": "MultiPolygon",
                "coordinates": [
                    [[[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]],
                    [[[14.0, 53.0], [14.1, 53.0], [14.1, 53.1], [14.0, 53.1], [14.0, 53.0]]],
                ],
            },
        )
        ring = zone(
            "Ring",
            {
                "type": "Polygon",
                "coordinates": [
                    [[10.0, 50.0], [11.0, 50.0], [11.0, 51.0], [10.0, 51.0], [10.0, 50.0]],
                    [[10.4, 50.4], [10.6, 50.4], [10.6, 50.6], [10.4, 50.6], [10.4, 50.4]],
                ],
            },
        )
        assert selectors.zone_for_point(53.05, 14.05) == islands
        assert selectors.zone_for_point(52.5, 13.5) is None  # between the islands, inside their bounds
        assert selectors.zone_for_point(50.1, 10.1) == ring
        assert selectors.zone_for_point(50.5, 10.5) is None  # in the hole

    def test_a_postal_code_goes_to_the_longest_matching_prefix(self):
        city = zone("City", None, ["1"])
        district = zone("District", box(13.0, 52.0, 13.1, 52.1), ["10 1", "109"])
        zone("Another district", None, ["101"])  # the same prefix as District: the first by name keeps it
        london = zone("London", None, ["sw1a"])
        zone("Closed", None, ["1011"], is_active=False)
        assert selectors.zone_for_postal_code("10115") == zone_named("Another district")
        assert selectors.zone_for_postal_code("10 9 99") == district
        assert selectors.zone_for_postal_code("12345") == city
        assert selectors.zone_for_postal_code("SW1A 1AA") == london
        assert selectors.zone_for_postal_code("sw1a1aa") == london
        assert selectors.zone_for_postal_code("20095") is None
        assert selectors.zone_for_postal_code("   ") is None
        assert selectors.zone_for_postal_code("") is None
        assert selectors.zone_for_postal_code("1" * 10_000) == city

    def test_a_dropoff_in_no_zone_falls_back_to_its_postal_code(self):
        mitte = zone("Mitte", box(13.36, 52.505, 13.42, 52.535), ["101"])
        spandau = zone("Spandau", None, ["135"])
        assert selectors.zone_for_dropoff(52.52, 13.40, "13585") == mitte  # coordinates decide
        assert selectors.zone_for_dropoff(52.53, 13.20, "13585") == spandau
        assert selectors.zone_for_dropoff(None, None, "10115") == mitte
        assert selectors.zone_for_dropoff(52.53, None, "13585") == spandau
        assert selectors.zone_for_dropoff(52.53, 13.20, "") is None

    def test_a_zone_handed_out_is_the_callers_own(self):
        # given a zone found once, then changed by its caller in memory
        mitte = zone("Mitte", box(13.36, 52.505, 13.42, 52.535), ["101"], offer_fanout=3)
        found = selectors.zone_for_point(52.52, 13.40)
        assert (found.pk, found.name, found.offer_fanout, found.postal_code_prefixes) == (mitte.pk, "Mitte", 3, ["101"])
        found.name = "Changed"
        found.postal_code_prefixes.append("999")
        # then the next caller gets the zone as stored
        again = selectors.zone_for_point(52.52, 13.40)
        assert (again.name, again.postal_code_prefixes) == ("Mitte", ["101"])
        assert selectors.zone_for_postal_code("99999") is None
        assert again.area == mitte.area  # deferred, read when asked for

    def test_an_area_written_past_validation_leaves_only_its_zone_out(self, caplog):
        good = zone("Good", box(13.0, 52.0, 13.1, 52.1))
        bad = zone("Bad", box(14.0, 53.0, 14.1, 53.1), ["5"])
        Zone.objects.filter(pk=bad.pk).update(area={"type": "Point", "coordinates": [14.05, 53.05]})
        with caplog.at_level(logging.ERROR, logger="dispatch.zone_index"):
            assert selectors.zone_for_point(52.05, 13.05) == good
        assert selectors.zone_for_point(53.05, 14.05) is None
        assert selectors.zone_for_postal_code("55555") == bad  # its postal prefixes still place orders
        assert f"zone {bad.pk} has an area that is not a polygon" in caplog.text


def zone_named(name):
    return Zone.objects.get(name=name)


@pytest.mark.django_db
class TestCost:
    def test_a_lookup_is_one_query_whatever_the_number_of_zones(self, django_assert_num_queries):
        zones = [zone(f"Zone {n:02d}", box(13 + n * 0.1, 52.0, 13.05 + n * 0.1, 52.05), [f"{20 + n}"]) for n in range(60)]
        selectors.zone_for_dropoff(52.0, 13.0, "")  # the index is built once
        for n in (0, 31, 59):
            with django_assert_num_queries(1):
                assert selectors.zone_for_dropoff(52.01, 13.01 + n * 0.1, "") == zones[n]
            with django_assert_num_queries(1):
                assert selectors.zone_for_dropoff(10.0, 10.0, f"{20 + n}123") == zones[n]

    def test_an_edit_decodes_again_only_the_area_it_changed(self):
        zones = [zone(f"Zone {n:02d}", box(13 + n * 0.1, 52.0, 13.05 + n * 0.1, 52.05)) for n in range(20)]
        assert selectors.zone_for_point(52.01, 13.01) == zones[0]
        Zone.objects.filter(pk=zones[7].pk).update(area=box(20.0, 50.0, 20.1, 50.1))
        with mock.patch("json.loads", wraps=json.loads) as loads:
            assert selectors.zone_for_point(50.05, 20.05) == zones[7]
        # (the small postal-prefix lists are decoded with every read of a zone: a few bytes each)
        decoded_areas = [json.loads(call.args[0]) for call in loads.call_args_list if "coordinates" in call.args[0]]
        assert decoded_areas == [box(20.0, 50.0, 20.1, 50.1)]


@pytest.mark.django_db
class TestEditsInThisProcess:
    """Each edit is a queryset write: no save(), no signal, nothing the index is told."""

    def test_every_kind_of_edit_is_seen_by_the_next_lookup(self):
        # given two overlapping zones, placed once (the index is built)
        west = zone("West", box(13.0, 52.0, 13.2, 52.2), ["10"])
        east = zone("East", box(13.1, 52.0, 13.3, 52.2), ["11"])
        assert selectors.zone_for_point(52.1, 13.15) == east
        # renamed: the overlap goes to the new first by name
        Zone.objects.filter(pk=west.pk).update(name="Central")
        assert selectors.zone_for_point(52.1, 13.15) == west
        # moved
        Zone.objects.filter(pk=west.pk).update(area=box(14.0, 53.0, 14.1, 53.1))
        assert selectors.zone_for_point(52.1, 13.15) == east
        assert selectors.zone_for_point(53.05, 14.05) == west
        # postal prefixes changed
        Zone.objects.filter(pk=east.pk).update(postal_code_prefixes=["12"])
        assert selectors.zone_for_postal_code("11111") is None
        assert selectors.zone_for_postal_code("12345") == east
        # a setting changed: the zone handed out carries it
        Zone.objects.filter(pk=east.pk).update(offer_fanout=7)
        assert selectors.zone_for_point(52.1, 13.25).offer_fanout == 7
        # switched off, and on again
        Zone.objects.filter(pk=east.pk).update(is_active=False)
        assert selectors.zone_for_point(52.1, 13.25) is None
        Zone.objects.filter(pk=east.pk).update(is_active=True)
        assert selectors.zone_for_point(52.1, 13.25) == east
        # created in bulk
        [north] = Zone.objects.bulk_create([Zone(name="North", slug="north", area=box(13.0, 54.0, 13.1, 54.1))])
        assert selectors.zone_for_point(54.05, 13.05) == north
        # deleted
        Zone.objects.filter(pk=north.pk).delete()
        assert selectors.zone_for_point(54.05, 13.05) is None

    def test_the_version_changes_with_every_change_and_only_then(self):
        mitte = zone("Mitte", box(13.36, 52.505, 13.42, 52.535))
        before = ZoneVersion.objects.get().token
        mitte.save()  # nothing changed: the index stays
        assert ZoneVersion.objects.get().token == before
        Zone.objects.filter(pk=mitte.pk).update(health_red_waiting=11)
        changed = ZoneVersion.objects.get().token
        assert changed != before
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE dispatch_zone CASCADE")
        assert ZoneVersion.objects.get().token != changed
        assert selectors.zone_for_point(52.52, 13.40) is None


@pytest.mark.django_db(transaction=True)
def test_an_edit_committed_by_another_connection_is_seen_by_the_next_lookup():
    # given a zone this process has placed a point in
    mitte = zone("Mitte", box(13.36, 52.505, 13.42, 52.535), ["101"])
    assert selectors.zone_for_point(52.52, 13.40) == mitte
    # when another session, which knows nothing of Django, moves it and commits
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True) as other:
        other.execute("UPDATE dispatch_zone SET area = %s::jsonb WHERE id = %s", [json.dumps(box(9.9, 53.5, 10.1, 53.6)), mitte.pk])
    # then this process's next lookup places by the new area
    assert selectors.zone_for_point(52.52, 13.40) is None
    assert selectors.zone_for_point(53.55, 10.0) == mitte


@pytest.mark.django_db(transaction=True)
def test_a_zone_edited_here_places_the_next_order_of_another_process():
    """The orders are placed by a uvicorn process (the shop's webhook); the zones are edited
    from this test's process, as ops would from the admin of another server."""
    mitte = zone("Mitte", box(13.36, 52.505, 13.42, 52.535), ["101"])
    DriverFactory(zones=[mitte])
    channel = ShopChannelFactory()

    def order_placed(base_url, code, lat=52.52, lon=13.40, postal_code="10115"):
        raw, headers = sample_payloads.signed_request(channel.token, channel.webhook_secret, ready_event(code=code, lat=lat, lon=lon, postal_code=postal_code))
        response = httpx.post(f"{base_url}/webhooks/vendure/", content=raw, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return Order.objects.get(pk=response.json()["order"]).zone

    with uvicorn_servers(1) as (url,):
        # given: the server has placed an order in Mitte (its index holds Mitte)
        assert order_placed(url, "Z-1") == mitte
        # when: ops add an overlapping zone first by name, then switch it off, then move Mitte
        kreuzberg = zone("Kreuzberg", box(13.38, 52.49, 13.45, 52.53), ["109"])
        assert order_placed(url, "Z-2") == kreuzberg
        Zone.objects.filter(pk=kreuzberg.pk).update(is_active=False)
        assert order_placed(url, "Z-3") == mitte
        Zone.objects.filter(pk=mitte.pk).update(area=box(9.9, 53.5, 10.1, 53.6), postal_code_prefixes=["20"])
        # then: each next order of the server follows, down to the postal-code fallback
        assert order_placed(url, "Z-4") is None
        assert order_placed(url, "Z-5", lat=53.55, lon=10.0) == mitte
        assert order_placed(url, "Z-6", lat=None, lon=None, postal_code="20095") == mitte


EMBEDDED_CHECK = """
from dispatch import selectors
from dispatch.models import Zone, ZoneVersion

def box(west, south, east, north):
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]}

zone = Zone.objects.create(name="Mitte", slug="mitte", area=box(13.3, 52.5, 13.4, 52.6), postal_code_prefixes=["101"])
assert selectors.zone_for_point(52.55, 13.35) == zone
before = ZoneVersion.objects.get().token
Zone.objects.filter(pk=zone.pk).update(area=box(9.9, 53.5, 10.1, 53.6))
assert ZoneVersion.objects.get().token != before
assert selectors.zone_for_point(52.55, 13.35) is None
assert selectors.zone_for_point(53.55, 10.0) == zone
Zone.objects.filter(pk=zone.pk).delete()
assert selectors.zone_for_postal_code("10115") is None
print("embedded zone index ok")
"""


def test_the_embedded_default_keeps_the_zone_version_too(tmp_path):
    """`make run` on SQLite: the migration's triggers keep the version there as well."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env["DISPATCH_VAR_DIR"] = str(tmp_path)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput"], env=env, cwd=ROOT, check=True, capture_output=True, timeout=300)
    result = subprocess.run([*manage, "shell", "-c", EMBEDDED_CHECK], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "embedded zone index ok" in result.stdout, result.stdout + result.stderr
