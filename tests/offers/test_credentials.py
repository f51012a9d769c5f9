"""Credentials are checked at every use that matters, not only at connect (issue 10, item 4).

A revocation made behind Django's back (raw SQL, another process, a queryset update) sends
no signal: the socket must still refuse the next frame and close within its recheck interval.
"""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from audit.models import AuditEvent
from dispatch.models import Driver, Order
from offers.models import Offer
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from tests.offers.test_consumer import connect, receive, run, send, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("v2_offers_on", "v2_availability_on")]


def delete_token_behind_djangos_back(key):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token WHERE key = %s", [key])


def deactivate_behind_djangos_back(driver):
    get_user_model().objects.filter(pk=driver.user_id).update(is_active=False)


REVOCATIONS = {
    "token deleted": lambda driver, key: delete_token_behind_djangos_back(key),
    "user deactivated": lambda driver, key: deactivate_behind_djangos_back(driver),
}


@pytest.fixture
def offered(v2_driver):
    ZoneFactory()
    driver = v2_driver()
    order = receive_order(ShopChannelFactory())
    return driver, order, Offer.objects.get(order=order, driver=driver)


async def closed_with(ws, timeout=3):
    output = await ws.receive_output(timeout=timeout)
    return output.get("code") if output["type"] == "websocket.close" else output


@pytest.mark.parametrize("revoke", REVOCATIONS.values(), ids=REVOCATIONS.keys())
def test_an_accept_sent_after_a_revocation_is_refused_and_the_socket_closes(offered, settings, revoke):
    # given a driver on the socket with a pending offer, and a recheck timer too slow to matter
    settings.DISPATCH_SOCKET_CREDENTIALS_RECHECK_S = 60
    driver, order, offer = offered
    key = token_for(driver)

    async def scenario():
        ws = await connect(key)
        # when the credentials are revoked, then the driver accepts
        await database_sync_to_async(revoke)(driver, key)
        refused = await send(ws, {"type": "accept", "id": "late", "offer_id": offer.pk})
        return refused, await closed_with(ws)

    refused, close_code = run(scenario)
    # then the accept is refused as revoked, the socket closes 4401, and the order is not theirs
    assert (refused["type"], refused["code"], refused["id"]) == ("error", "revoked", "late")
    assert close_code == 4401
    assert Offer.objects.get(pk=offer.pk).state == Offer.State.PENDING
    assert Order.objects.get(pk=order.pk).driver_id is None


@pytest.mark.parametrize("revoke", REVOCATIONS.values(), ids=REVOCATIONS.keys())
def test_a_silent_socket_is_closed_within_the_recheck_interval(offered, settings, revoke):
    # given a connected driver who sends nothing, and a recheck every 0.3 s
    settings.DISPATCH_SOCKET_CREDENTIALS_RECHECK_S = 0.3
    driver, _, _ = offered
    key = token_for(driver)

    async def scenario():
        ws = await connect(key)
        # when the credentials are revoked behind Django's back
        await database_sync_to_async(revoke)(driver, key)
        # then within the interval (plus slack) an error frame `revoked`, then close 4401
        frame = await receive(ws, timeout=2)
        return frame, await closed_with(ws)

    frame, close_code = run(scenario)
    assert (frame["type"], frame["code"]) == ("error", "revoked")
    assert close_code == 4401


def test_deleting_the_token_in_django_closes_the_socket_at_once(offered, settings):
    # given a slow timer: only the signal can close it in time
    settings.DISPATCH_SOCKET_CREDENTIALS_RECHECK_S = 60
    driver, _, _ = offered
    key = token_for(driver)

    async def scenario():
        ws = await connect(key)
        await database_sync_to_async(lambda: Token.objects.filter(key=key).delete())()
        frame = await receive(ws, timeout=2)
        return frame, await closed_with(ws)

    frame, close_code = run(scenario)
    assert (frame["code"], close_code) == ("revoked", 4401)


def test_deactivating_a_driver_takes_them_offline_withdraws_their_offer_and_closes_their_socket(offered, settings):
    # given a driver on the socket with a pending offer, and another driver free in the zone
    settings.DISPATCH_SOCKET_CREDENTIALS_RECHECK_S = 60
    driver, order, offer = offered
    other = DriverFactory()  # a v1 app: gets the order directly once it moves on
    key = token_for(driver)

    def deactivate():  # as the user admin's change form does: the save, then the use case, in one transaction
        from django.db import transaction

        from usecases.drivers import driver_deactivated

        with transaction.atomic():
            user = get_user_model().objects.get(pk=driver.user_id)
            user.is_active = False
            user.save()
            driver_deactivated(user_id=user.pk)

    async def scenario():
        ws = await connect(key)
        await database_sync_to_async(deactivate)()
        frames = [await receive(ws, timeout=2), await receive(ws, timeout=2)]
        return frames, await closed_with(ws)

    # when ops deactivate the driver's user (as admin does: a save)
    frames, close_code = run(scenario)
    # then they are told the offer is withdrawn, the socket is revoked, and the order moves on
    assert [f["type"] for f in frames] == ["offer_withdrawn", "error"] and frames[1]["code"] == "revoked"
    assert close_code == 4401
    assert Driver.objects.get(pk=driver.pk).availability == Driver.Availability.OFFLINE
    assert Offer.objects.get(pk=offer.pk).withdrawn_reason == Offer.WithdrawnReason.DRIVER_UNAVAILABLE
    assert Order.objects.get(pk=order.pk).driver_id == other.pk
    offline = AuditEvent.objects.get(kind="driver.offline", driver_id=driver.pk)
    assert offline.data == {"reason": "deactivated"}


@pytest.mark.parametrize("speaks_v2", [False, True], ids=["v1 app", "v2 app"])
def test_an_inactive_driver_who_is_still_online_is_never_offered_nor_assigned_an_order(v2_driver, speaks_v2):
    # given the zone's only driver is online but deactivated without any signal
    ZoneFactory()
    driver = v2_driver() if speaks_v2 else DriverFactory()
    deactivate_behind_djangos_back(driver)
    # when an order arrives, and the assignment sweep retries it
    order = receive_order(ShopChannelFactory())
    from usecases.dispatching import assign_orders_due

    assign_orders_due()
    # then nobody got it: no offer, no assignment
    order.refresh_from_db()
    assert order.driver_id is None and order.status == Order.Status.UNASSIGNED
    assert not Offer.objects.filter(driver=driver).exists()


def test_an_inactive_driver_cannot_answer_over_rest(offered):
    driver, order, offer = offered
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(driver)}")
    deactivate_behind_djangos_back(driver)
    response = client.post(f"/api/v2/offers/{offer.pk}/accept/")
    assert response.status_code == 401
    assert Offer.objects.get(pk=offer.pk).state == Offer.State.PENDING


def test_the_credentials_check_costs_one_query(offered, django_assert_num_queries):
    from offers.selectors import driver_credentials_valid

    driver, _, _ = offered
    key = token_for(driver)
    with django_assert_num_queries(1):
        assert driver_credentials_valid(key, driver.user_id)
