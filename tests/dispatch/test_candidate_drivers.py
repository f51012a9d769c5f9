"""dispatch.selectors.candidate_drivers ranks in the database: the whole ranking, and its head
when a limit is given, found through boxes around the pickup (issue 11)."""

import math
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dispatch import selectors
from dispatch.geometry import distance_m
from dispatch.models import Driver
from dispatch.selectors import CANDIDATE_SEARCH_RADII_M
from tests.factories import DriverFactory, ZoneFactory

pytestmark = pytest.mark.django_db

PICKUP = (52.5163, 13.3777)


def offset(metres: float, bearing_deg: float = 0.0, origin: tuple[float, float] = PICKUP) -> tuple[float, float]:
    """A point `metres` from the origin towards `bearing_deg` (0 is north), on the sphere."""
    lat1, lon1 = map(math.radians, origin)
    angle, bearing = metres / 6_371_000.0, math.radians(bearing_deg)
    lat2 = math.asin(math.sin(lat1) * math.cos(angle) + math.cos(lat1) * math.sin(angle) * math.cos(bearing))
    lon2 = lon1 + math.atan2(math.sin(bearing) * math.sin(angle) * math.cos(lat1), math.cos(angle) - math.sin(lat1) * math.sin(lat2))
    return math.degrees(lat2), (math.degrees(lon2) + 540) % 360 - 180


def driver(now, *, at=None, age_s=30.0, idle_s=None):
    """An available driver of the zone; `at` is (lat, lon), `age_s` the age of that position,
    `idle_s` how long they have been idle (None: never)."""
    made = DriverFactory()
    Driver.objects.filter(pk=made.pk).update(
        last_lat=at[0] if at else None,
        last_lon=at[1] if at else None,
        last_position_at=now - timedelta(seconds=age_s) if at else None,
        idle_since=now - timedelta(seconds=idle_s) if idle_s is not None else None,
    )
    return made


def ranked(now, limit=None, exclude=(), zone=None, pickup=PICKUP):
    return selectors.candidate_drivers(zone or ZoneFactory(), *pickup, now=now, exclude=exclude, limit=limit)


def test_a_limit_gives_the_head_of_the_whole_ranking_wherever_the_drivers_are():
    # given drivers in every box searched and beyond, stale ones, one never placed, and two
    # at the same spot
    now = timezone.now()
    stale_age = settings.DISPATCH_POSITION_MAX_AGE_S + 1
    near = [driver(now, at=offset(m, b)) for m, b in [(120, 10), (480, 200), (900, 90)]]
    same_spot = [driver(now, at=offset(2_500, 45), idle_s=60), driver(now, at=offset(2_500, 45), idle_s=600)]
    town = driver(now, at=offset(12_000, 300))
    far = driver(now, at=offset(90_000, 180))
    antipode = driver(now, at=(-PICKUP[0], PICKUP[1] - 180))
    stale_near = driver(now, at=offset(10, 0), age_s=stale_age, idle_s=30)
    stale_idle_long = driver(now, at=offset(50_000, 0), age_s=stale_age, idle_s=7200)
    never_placed = driver(now, idle_s=600)
    never_idle = driver(now, at=offset(5, 5), age_s=stale_age)
    # when the whole ranking is asked for
    everyone = ranked(now)
    # then the fresh positions come nearest first (the same spot: idle longest first), then the
    # rest idle longest first, never idle before all
    expected = [*near, same_spot[1], same_spot[0], town, far, antipode, never_idle, stale_idle_long, never_placed, stale_near]
    assert everyone == expected
    # and every limit gives its head, with the same distances
    for limit in range(len(expected) + 2):
        head = ranked(now, limit=limit)
        assert head == expected[:limit], limit
        assert [d.distance_m for d in head] == [d.distance_m for d in everyone[:limit]]


def test_each_driver_carries_the_distance_to_the_pickup_or_none_without_a_fresh_position():
    now = timezone.now()
    placed = driver(now, at=offset(1_500, 33))
    antipode = driver(now, at=(-PICKUP[0], PICKUP[1] - 180))
    stale = driver(now, at=offset(10, 0), age_s=settings.DISPATCH_POSITION_MAX_AGE_S + 1)
    unplaced = driver(now)
    distances = {d.pk: d.distance_m for d in ranked(now)}
    assert distances[placed.pk] == pytest.approx(distance_m(*PICKUP, *offset(1_500, 33)), rel=1e-9)
    assert distances[placed.pk] == pytest.approx(1_500, rel=1e-6)
    assert distances[antipode.pk] == pytest.approx(math.pi * 6_371_000.0, rel=1e-6)
    assert distances[stale.pk] is None and distances[unplaced.pk] is None


def test_a_position_exactly_as_old_as_the_limit_is_still_fresh():
    now = timezone.now()
    oldest_fresh = driver(now, at=offset(3_000), age_s=settings.DISPATCH_POSITION_MAX_AGE_S)
    just_stale = driver(now, at=offset(100), age_s=settings.DISPATCH_POSITION_MAX_AGE_S + 0.001, idle_s=3600)
    assert ranked(now) == [oldest_fresh, just_stale]
    assert ranked(now, limit=1) == [oldest_fresh]


def test_equal_distances_rank_never_idle_first_then_idle_longest_then_by_id():
    now = timezone.now()
    spot = offset(700, 120)
    idle_a, never_idle, idle_b, idle_longer = (driver(now, at=spot, idle_s=s) for s in (60, None, 60, 3600))
    assert idle_a.pk < idle_b.pk
    assert ranked(now) == [never_idle, idle_longer, idle_a, idle_b]
    assert ranked(now, limit=3) == [never_idle, idle_longer, idle_a]


def test_drivers_without_a_fresh_position_rank_never_idle_first_then_idle_longest():
    now = timezone.now()
    stale_age = settings.DISPATCH_POSITION_MAX_AGE_S * 2
    idle_short = driver(now, idle_s=60)
    never_idle_b = driver(now, at=offset(1), age_s=stale_age)
    idle_long = driver(now, at=offset(1), age_s=stale_age, idle_s=7200)
    never_idle_a = driver(now)
    fresh = driver(now, at=offset(40_000))
    expected = [fresh, never_idle_b, never_idle_a, idle_long, idle_short]
    assert ranked(now) == expected
    for limit in range(1, 6):
        assert ranked(now, limit=limit) == expected[:limit]


def test_excluded_drivers_leave_their_places_to_the_next():
    now = timezone.now()
    first, second, third, fourth = (driver(now, at=offset(m)) for m in (100, 200, 300, 400))
    assert ranked(now, limit=2, exclude=[[first.pk], selectors.DriverExclusion("d.id = %s", (third.pk,))]) == [second, fourth]


def test_a_negative_limit_is_refused():
    with pytest.raises(ValueError, match="limit"):
        ranked(timezone.now(), limit=-1)


def test_near_drivers_are_found_in_one_query_and_far_ones_in_a_bounded_number(django_assert_num_queries):
    now = timezone.now()
    zone = ZoneFactory()
    crowd = [driver(now, at=offset(50 * (n + 1), 37 * n)) for n in range(6)]
    with django_assert_num_queries(1):
        assert ranked(now, limit=5, zone=zone) == crowd[:5]
    Driver.objects.filter(pk__in=[d.pk for d in crowd]).update(last_lat=None, last_lon=None, last_position_at=None)
    lone = driver(now, at=offset(500_000))
    # every box, then the whole zone in one query (a position by distance, then the others)
    with django_assert_num_queries(len(CANDIDATE_SEARCH_RADII_M) + 1):
        assert ranked(now, limit=2, zone=zone) == [lone, crowd[0]]


def test_a_zone_answered_by_its_whole_fleet_is_searched_whole_next_time_until_drivers_come_near(django_assert_num_queries):
    # given a zone whose available drivers have no position: the boxes find nobody
    now = timezone.now()
    zone = ZoneFactory()
    unplaced = [driver(now) for _ in range(2)]
    with django_assert_num_queries(len(CANDIDATE_SEARCH_RADII_M) + 1):
        assert ranked(now, limit=2, zone=zone) == unplaced
    # then the next search asks the whole zone at once, and finds the same drivers
    with django_assert_num_queries(1):
        assert ranked(now, limit=2, zone=zone) == unplaced
    # and drivers who come near are ranked first by that query, and the search narrows again
    near = [driver(now, at=offset(100 * (n + 1))) for n in range(2)]
    with django_assert_num_queries(1):
        assert ranked(now, limit=2, zone=zone) == near
    with django_assert_num_queries(1):
        assert ranked(now, limit=2, zone=zone) == near


def test_a_search_after_a_sparse_one_starts_wider_and_finds_the_same_drivers(django_assert_num_queries):
    # given a zone whose drivers are all 10 km away: its search ends in the widest box
    now = timezone.now()
    zone = ZoneFactory()
    far = [driver(now, at=offset(10_000 + 100 * n, 90 * n)) for n in range(3)]
    with django_assert_num_queries(len(CANDIDATE_SEARCH_RADII_M)):
        assert ranked(now, limit=2, zone=zone) == far[:2]
    # then the next search starts there, in one query
    with django_assert_num_queries(1):
        assert ranked(now, limit=2, zone=zone) == far[:2]
    # and when drivers come near, they are found first, and the search narrows again
    near = [driver(now, at=offset(100 * (n + 1))) for n in range(2)]
    with django_assert_num_queries(1):
        assert ranked(now, limit=2, zone=zone) == near
    with django_assert_num_queries(1):
        assert ranked(now, limit=2, zone=zone) == near
    # and when they leave, the search widens again
    Driver.objects.filter(pk__in=[d.pk for d in near]).update(availability=Driver.Availability.OFFLINE)
    assert ranked(now, limit=2, zone=zone) == far[:2]
    assert ranked(now, limit=3, zone=zone) == far


@pytest.mark.parametrize("pickup", [PICKUP, (0.0, 0.0), (-69.9, 179.99), (78.2, 15.6), (89.995, 0.0)])
@pytest.mark.parametrize("bearing", range(0, 360, 45))
def test_a_driver_just_inside_the_first_radius_is_found_by_the_first_box(pickup, bearing, django_assert_num_queries):
    # the box around a pickup holds the whole circle, at the equator, near a pole and across
    # the antimeridian alike
    now = timezone.now()
    zone = ZoneFactory()
    inside = driver(now, at=offset(CANDIDATE_SEARCH_RADII_M[0] * 0.995, bearing, origin=pickup))
    with django_assert_num_queries(1):
        assert ranked(now, limit=1, zone=zone, pickup=pickup) == [inside]


def test_a_driver_in_the_corner_of_a_box_ranks_after_a_nearer_one_outside_it():
    # given, for the first box, a driver in its corner (inside the box, beyond the radius) and a
    # nearer one just north of it (outside the box)
    now = timezone.now()
    radius = CANDIDATE_SEARCH_RADII_M[0]
    nearest = driver(now, at=offset(10))
    corner = driver(now, at=offset(radius * 1.3, 45))
    outside = driver(now, at=offset(radius * 1.05, 0))
    # then the nearer one comes second, whatever the boxes hold
    assert ranked(now, limit=2) == [nearest, outside]
    assert ranked(now) == [nearest, outside, corner]


distances_m = st.one_of(st.floats(0, 2_000), st.floats(2_000, 30_000), st.floats(30_000, 3_000_000))
drivers_drawn = st.lists(
    st.tuples(
        st.one_of(st.none(), st.tuples(distances_m, st.floats(0, 360)), st.sampled_from([(700.0, 90.0), (4_000.0, 10.0)])),  # same spots
        st.booleans(),  # position stale
        st.one_of(st.none(), st.sampled_from([60, 600, 3600])),  # idle for
    ),
    max_size=14,
)


@given(drawn=drivers_drawn, limit=st.integers(0, 16))
@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_limit_gives_the_head_of_the_ranking_and_the_ranking_is_in_order(drawn, limit):
    now = timezone.now()
    with transaction.atomic():
        for where, is_stale, idle_s in drawn:
            age_s = settings.DISPATCH_POSITION_MAX_AGE_S + 5 if is_stale else 5
            driver(now, at=offset(*where) if where else None, age_s=age_s, idle_s=idle_s)
        everyone = ranked(now)
        head = ranked(now, limit=limit)
        again = ranked(now, limit=limit)  # from the box the first search ended with
        transaction.set_rollback(True)
    assert [d.pk for d in head] == [d.pk for d in everyone[:limit]]
    assert [d.pk for d in again] == [d.pk for d in head]
    placed = [d for d in everyone if d.distance_m is not None]
    assert everyone[: len(placed)] == placed  # fresh positions first
    keys = [(d.distance_m, d.idle_since is not None, d.idle_since, d.pk) for d in placed]
    assert keys == sorted(keys)
    rest = [(d.idle_since is not None, d.idle_since, d.pk) for d in everyone[len(placed) :]]
    assert rest == sorted(rest)
    for d in placed:
        assert d.distance_m == pytest.approx(distance_m(*PICKUP, d.last_lat, d.last_lon), rel=1e-9, abs=1e-6)
