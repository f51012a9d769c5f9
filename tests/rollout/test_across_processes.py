"""A kill-switch flipped in one process is obeyed by another at its very next decision.

The decision runs in a real uvicorn process (a shop's webhook); the flip is made from this
test's process, as ops would from the admin served by another server. Each process has its own
memory, so a switch remembered in one (waffle's default cache is per process) shows here.
"""

import httpx
import pytest
from django.utils import timezone

from audit.actors import Actor
from dispatch.models import Order
from offers.models import Offer
from rollout.services import rollout_set
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import ready_event
from tests.live.servers import uvicorn_servers
from usecases.switches import switch_set
from vendure import sample_payloads

pytestmark = pytest.mark.django_db(transaction=True)
OPS = Actor.system("ops-in-another-process")


def _webhook(base_url, channel, code):
    raw, headers = sample_payloads.signed_request(channel.token, channel.webhook_secret, ready_event(code=code))
    response = httpx.post(f"{base_url}/webhooks/vendure/", content=raw, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return Order.objects.get(pk=response.json()["order"])


def test_a_switch_flipped_elsewhere_decides_the_other_process_next_order():
    ZoneFactory()
    channel = ShopChannelFactory()
    drivers = [DriverFactory(v2_connected_at=timezone.now(), app_version="2.4.0") for _ in range(3)]
    switch_set(name="v2_offers", active=True, actor=OPS)
    rollout_set(feature="v2_offers", percentage=100, actor=OPS)
    with uvicorn_servers(1) as (url,):
        # given: the server has decided with the switch on (and would remember it)
        first = _webhook(url, channel, "X-1")
        assert Offer.objects.filter(order=first, state=Offer.State.PENDING).count() == 1

        # when: ops turn offers off from another process
        switch_set(name="v2_offers", active=False, actor=OPS)
        second = _webhook(url, channel, "X-2")

        # then: the server's next decision is v1: a direct assignment, no offer
        second.refresh_from_db()
        assert not Offer.objects.filter(order=second).exists()
        assert second.status == Order.Status.ASSIGNED and second.driver_id in {d.pk for d in drivers}

        # and back on: the next order is offered again
        switch_set(name="v2_offers", active=True, actor=OPS)
        third = _webhook(url, channel, "X-3")
        assert Offer.objects.filter(order=third).exists()


def test_a_flip_waits_for_the_decisions_already_reading_the_old_value():
    """No offer decided on the old value can commit after the flip: the flip waits for it."""
    import threading
    import time

    from django.db import connection, transaction

    from offers.services import offer_decider

    switch_set(name="v2_offers", active=True, actor=OPS)
    decided_on, committed_at, flipped_at = [], [], []

    def decision():
        try:
            with transaction.atomic():
                decided_on.append(offer_decider()(DriverFactory.build(pk=1, v2_connected_at=timezone.now())) is not None)
                time.sleep(0.5)  # the decision's work (offers made) before it commits
            committed_at.append(time.monotonic())
        finally:
            connection.close()

    def flip():
        try:
            switch_set(name="v2_offers", active=False, actor=OPS)
            flipped_at.append(time.monotonic())
        finally:
            connection.close()

    deciding = threading.Thread(target=decision)
    deciding.start()
    time.sleep(0.2)
    flipping = threading.Thread(target=flip)
    flipping.start()
    deciding.join(10)
    flipping.join(10)
    assert decided_on == [True]
    assert flipped_at[0] > committed_at[0]
