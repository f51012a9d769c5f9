"""The process-wide socket timer (offers/socket_watch.py): all the sockets a process holds
are vouched for and re-checked together, in a few queries whatever their number."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token

from availability.models import DriverSocket
from availability.services import driver_sockets_seen
from offers.selectors import driver_credentials_valid_many
from tests.factories import DriverFactory

pytestmark = pytest.mark.django_db


def a_socket_of(driver, name, *, seen_s_ago=0):
    at = timezone.now() - timedelta(seconds=seen_s_ago)
    return DriverSocket.objects.create(driver=driver, channel_name=name, opened_at=at, seen_at=at)


def test_the_sockets_of_a_process_are_vouched_for_in_one_query_whatever_their_number(django_assert_max_num_queries):
    # given 60 open sockets last vouched for 20 s ago
    drivers = DriverFactory.create_batch(60)
    for n, driver in enumerate(drivers):
        a_socket_of(driver, f"specific.p!{n}", seen_s_ago=20)
    # when the timer ticks for all of them
    with django_assert_max_num_queries(1):
        closing = driver_sockets_seen(sockets=[(driver.pk, f"specific.p!{n}") for n, driver in enumerate(drivers)])
    # then every row is fresh and none closes
    assert closing == set()
    assert not DriverSocket.objects.filter(seen_at__lt=timezone.now() - timedelta(seconds=5)).exists()


def test_a_socket_whose_row_a_sweep_dropped_is_written_again_and_one_that_was_replaced_closes(settings):
    # given one driver allowed one socket, whose place a newer socket took; and one whose row a sweep dropped
    settings.DISPATCH_MAX_SOCKETS_PER_DRIVER = 1
    replaced_driver, dropped_driver, kept_driver = DriverFactory.create_batch(3)
    a_socket_of(replaced_driver, "specific.p!newer")
    a_socket_of(kept_driver, "specific.p!kept", seen_s_ago=10)
    # when the timer ticks for the old socket of the first, the dropped one and a kept one
    closing = driver_sockets_seen(
        sockets=[(replaced_driver.pk, "specific.p!older"), (dropped_driver.pk, "specific.p!dropped"), (kept_driver.pk, "specific.p!kept")]
    )
    # then the replaced socket closes, the dropped one has its row again, the kept one is fresh
    assert closing == {"specific.p!older"}
    assert set(DriverSocket.objects.values_list("channel_name", flat=True)) == {"specific.p!newer", "specific.p!dropped", "specific.p!kept"}
    assert DriverSocket.objects.get(channel_name="specific.p!kept").seen_at > timezone.now() - timedelta(seconds=5)


def test_credentials_of_many_sockets_are_checked_in_one_query(django_assert_max_num_queries):
    # given five drivers' tokens: one deleted, one whose user was deactivated, one moved to another user
    drivers = DriverFactory.create_batch(5)
    keys = [Token.objects.create(user=driver.user).key for driver in drivers]
    Token.objects.filter(key=keys[0]).delete()
    get_user_model().objects.filter(pk=drivers[1].user_id).update(is_active=False)
    asked = [(key, driver.user_id) for key, driver in zip(keys, drivers, strict=True)]
    asked[2] = (keys[2], drivers[3].user_id)  # a socket holding a token of another user
    # when the timer checks them all
    with django_assert_max_num_queries(1):
        valid = driver_credentials_valid_many(asked)
    # then only the untouched pairs hold
    assert valid == {asked[3], asked[4]}
