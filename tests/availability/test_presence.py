"""Who is connected is owned by rows that heal themselves (issue 10: `live_sockets` leaked one
per driver whenever a server process or Redis died, and nothing reconciled it)."""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from availability import services
from availability.models import DriverSocket
from availability.selectors import connected_sockets, driver_is_connected
from dispatch.models import Driver
from tests.factories import DriverFactory, ZoneFactory
from tests.offers.test_consumer import connect, receive, run, send, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("v2_offers_on", "v2_availability_on")]


def a_server_died_holding_a_socket_of(driver, *, seconds_ago):
    """What a server killed with SIGKILL leaves: the presence row of a socket it held, which
    nobody will ever delete or refresh."""
    at = timezone.now() - timedelta(seconds=seconds_ago)
    return DriverSocket.objects.create(driver=driver, channel_name=f"specific.dead!{driver.pk}", opened_at=at, seen_at=at)


def test_a_socket_whose_server_died_stops_counting_after_the_timeout_and_the_sweep_drops_it(settings):
    # given a driver whose socket's server died, then who reconnected elsewhere and left cleanly
    settings.DISPATCH_SOCKET_PRESENCE_TIMEOUT_S = 30
    ZoneFactory()
    driver = DriverFactory()
    dead = a_server_died_holding_a_socket_of(driver, seconds_ago=1)
    key = token_for(driver)

    async def reconnect_and_leave():
        ws = await connect(key)
        await ws.disconnect()

    run(reconnect_and_leave)
    # then while the dead server's row is young it still counts (it cannot be told from a live one)
    assert driver_is_connected(driver.pk) and connected_sockets().count() == 1
    # when the presence timeout passes without the dead server vouching for it
    DriverSocket.objects.filter(pk=dead.pk).update(seen_at=timezone.now() - timedelta(seconds=31))
    # then it no longer counts, before any sweep, and the sweep deletes it (once)
    assert not driver_is_connected(driver.pk) and connected_sockets().count() == 0
    assert services.drop_stale_sockets_due() == 1
    assert services.drop_stale_sockets_due() == 0
    assert not DriverSocket.objects.exists()


def test_an_open_socket_is_vouched_for_on_its_timer_and_its_row_goes_when_it_closes(settings):
    # given a socket open longer than the presence timeout, its server alive
    settings.DISPATCH_SOCKET_CREDENTIALS_RECHECK_S = 0.2
    settings.DISPATCH_SOCKET_PRESENCE_TIMEOUT_S = 1
    ZoneFactory()
    driver = DriverFactory()
    key = token_for(driver)

    async def scenario():
        ws = await connect(key)
        # a sweep that ran while the process stalled dropped its row
        await database_sync_to_async(lambda: DriverSocket.objects.update(seen_at=timezone.now() - timedelta(seconds=5)))()
        assert await database_sync_to_async(services.drop_stale_sockets_due)() == 1
        connected_while_open = False
        for _ in range(30):  # the next tick of the timer, however loaded the machine is
            await asyncio.sleep(0.1)
            if connected_while_open := await database_sync_to_async(driver_is_connected)(driver.pk):
                break
        await ws.disconnect()
        return connected_while_open

    # then the timer wrote it again, and closing removed it
    assert run(scenario) is True
    assert not DriverSocket.objects.filter(driver=driver).exists()


def test_a_driver_holds_at_most_the_set_number_of_sockets_the_oldest_is_replaced(settings):
    # given a limit of two sockets per driver
    settings.DISPATCH_MAX_SOCKETS_PER_DRIVER = 2
    ZoneFactory()
    driver = DriverFactory()
    key = token_for(driver)

    async def scenario():
        first = await connect(key)
        second = await connect(key)
        # when a third opens
        third = await connect(key)
        # then the oldest is told it was replaced and closed with 4409; the others work
        told = await receive(first)
        closed = await first.receive_output(timeout=2)
        answers = [await send(ws, {"type": "heartbeat", "id": "hb"}) for ws in (second, third)]
        rows = await database_sync_to_async(DriverSocket.objects.filter(driver=driver).count)()
        for ws in (second, third):
            await ws.disconnect()
        return told, closed, answers, rows

    told, closed, answers, rows = run(scenario)
    assert (told["type"], told["code"]) == ("error", "replaced")
    assert closed == {"type": "websocket.close", "code": 4409}
    assert [a["type"] for a in answers] == ["ack", "ack"]
    assert rows == 2
    assert Driver.objects.get(pk=driver.pk).v2_connected_at is not None


def test_a_replaced_socket_that_never_heard_of_it_closes_itself_on_its_timer(settings):
    # given a limit of one socket per driver and a socket whose "replaced" message was lost
    settings.DISPATCH_MAX_SOCKETS_PER_DRIVER = 1
    settings.DISPATCH_SOCKET_CREDENTIALS_RECHECK_S = 0.2
    ZoneFactory()
    driver = DriverFactory()
    key = token_for(driver)

    async def scenario():
        old = await connect(key)
        # a newer socket took the place (its row), and the word to the old one never came
        await database_sync_to_async(lambda: DriverSocket.objects.filter(driver=driver).delete())()
        newer = await database_sync_to_async(DriverSocket.objects.create)(
            driver=driver, channel_name="specific.newer!1", opened_at=timezone.now(), seen_at=timezone.now()
        )
        told = await receive(old, timeout=5)
        closed = await old.receive_output(timeout=5)
        rows = await database_sync_to_async(lambda: list(DriverSocket.objects.filter(driver=driver).values_list("pk", flat=True)))()
        return told, closed, rows, newer.pk

    told, closed, rows, newer = run(scenario)
    # then on its next tick it finds no place, says so and closes: the limit holds
    assert (told["type"], told["code"]) == ("error", "replaced")
    assert closed == {"type": "websocket.close", "code": 4409}
    assert rows == [newer]
