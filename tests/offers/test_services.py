from datetime import timedelta

import pytest
from django.utils import timezone

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch import services as dispatch_services
from dispatch.models import Driver, Order
from offers.errors import OfferAlreadyAnswered, OfferExpired, OfferTaken, OfferWithdrawn
from offers.models import Offer
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import mark_unassigned, order_intake, receive_order
from usecases import dispatching
from usecases import intake as intake_usecases
from usecases import offers as offer_usecases
from usecases import orders as order_usecases
from usecases.drivers import driver_go_offline
from usecases.switches import switch_set
from usecases.tasks import expire_offers_due

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("v2_offers_on")]
STAFF = Actor.system("test ops")


@pytest.fixture
def channel():
    ZoneFactory()
    return ShopChannelFactory()


def pending(order):
    return Offer.objects.get(order=order, state=Offer.State.PENDING)


def test_a_v2_driver_is_offered_the_order_and_accepting_assigns_it(channel, v2_driver):
    driver = v2_driver()
    order = receive_order(channel)
    assert order.status == Order.Status.RECEIVED and order.driver is None
    offer = pending(order)
    assert offer.driver == driver and offer.expires_at == offer.created_at + timedelta(seconds=30)
    accepted = offer_usecases.offer_accept(offer_id=offer.pk, driver=driver)
    order.refresh_from_db()
    assert accepted.state == Offer.State.ACCEPTED
    assert (order.status, order.driver) == (Order.Status.ASSIGNED, driver)
    kinds = list(AuditEvent.objects.filter(order_id=order.pk).order_by("id").values_list("kind", flat=True))
    assert kinds == ["order.received", "offer.made", "dispatch.decided", "order.assigned", "offer.accepted"]


def test_the_same_accept_again_changes_nothing_and_returns_the_same_answer(channel, v2_driver):
    driver = v2_driver()
    offer = pending(receive_order(channel))
    first = offer_usecases.offer_accept(offer_id=offer.pk, driver=driver)
    events = AuditEvent.objects.count()
    again = offer_usecases.offer_accept(offer_id=offer.pk, driver=driver)
    assert (again.pk, again.state, again.answered_at) == (first.pk, first.state, first.answered_at)
    assert AuditEvent.objects.count() == events
    assert Driver.objects.get(pk=driver.pk).active_order_count == 1


def test_decline_moves_the_order_to_the_next_driver_and_never_back(channel, v2_driver):
    first, second = v2_driver(), v2_driver()
    order = receive_order(channel)
    offer = pending(order)
    offer_usecases.offer_decline(offer_id=offer.pk, driver=offer.driver, reason="too far")
    next_offer = pending(order)
    assert next_offer.driver != offer.driver and {offer.driver, next_offer.driver} == {first, second}
    offer_usecases.offer_decline(offer_id=next_offer.pk, driver=next_offer.driver)
    order.refresh_from_db()
    assert (order.status, order.waiting_reason) == (Order.Status.UNASSIGNED, "no_candidates")
    assert not Offer.objects.filter(order=order, state=Offer.State.PENDING).exists()
    # the sweep later does not offer it to the drivers who declined
    dispatching.assign_orders_due()
    assert Offer.objects.filter(order=order).count() == 2
    # declining twice answers the same
    assert offer_usecases.offer_decline(offer_id=offer.pk, driver=offer.driver).state == Offer.State.DECLINED


def test_expiry_sweep_lapses_due_offers_and_moves_on_and_a_late_accept_is_refused(channel, v2_driver):
    v2_driver(), v2_driver()
    order = intake_usecases.order_receive(channel=channel, intake=order_intake(), actor=STAFF)[0]
    dispatching.order_dispatch(order_id=order.pk, now=timezone.now() - timedelta(seconds=45))  # offered 45 s ago
    lapsed = pending(order)
    assert offer_usecases.expire_offers_due() == 1
    assert offer_usecases.expire_offers_due() == 0  # a rerun finds nothing
    lapsed.refresh_from_db()
    assert lapsed.state == Offer.State.EXPIRED
    assert pending(order).driver != lapsed.driver
    with pytest.raises(OfferExpired):
        offer_usecases.offer_accept(offer_id=lapsed.pk, driver=lapsed.driver)


def test_an_accept_after_the_deadline_but_before_the_sweep_is_refused_as_expired(channel, v2_driver):
    driver = v2_driver()
    order = intake_usecases.order_receive(channel=channel, intake=order_intake(), actor=STAFF)[0]
    dispatching.order_dispatch(order_id=order.pk, now=timezone.now() - timedelta(seconds=31))
    with pytest.raises(OfferExpired):
        offer_usecases.offer_accept(offer_id=pending(order).pk, driver=driver)
    order.refresh_from_db()
    assert order.status == Order.Status.RECEIVED and Driver.objects.get(pk=driver.pk).active_order_count == 0


def test_a_v1_driver_is_assigned_directly_while_v2_is_at_100_percent(channel):
    v1_driver = DriverFactory()  # never opened the v2 socket
    order = receive_order(channel)
    assert (order.status, order.driver) == (Order.Status.ASSIGNED, v1_driver)
    assert not Offer.objects.exists()


def test_an_app_below_the_v2_minimum_version_is_served_v1(channel, settings):
    settings.DISPATCH_V2_MIN_APP_VERSION = "3.0.0"
    old_app = DriverFactory(v2_connected_at=timezone.now(), app_version="2.9.9")
    order = receive_order(channel)
    assert order.driver == old_app and not Offer.objects.exists()


def test_switching_offers_off_withdraws_pending_offers_and_assigns_the_v1_way(channel, v2_driver, django_capture_on_commit_callbacks):
    driver = v2_driver()
    order = receive_order(channel)
    offer = pending(order)
    with django_capture_on_commit_callbacks(execute=True):
        switch_set(name="v2_offers", active=False, actor=STAFF)
    offer.refresh_from_db()
    order.refresh_from_db()
    assert (offer.state, offer.withdrawn_reason) == (Offer.State.WITHDRAWN, Offer.WithdrawnReason.SWITCHED_OFF)
    assert (order.status, order.driver) == (Order.Status.ASSIGNED, driver)
    flip = AuditEvent.objects.filter(kind="switch.flipped").latest("id")
    assert (flip.before, flip.after, flip.actor_label) == ({"active": True}, {"active": False}, "test ops")
    with pytest.raises(OfferWithdrawn):
        offer_usecases.offer_accept(offer_id=offer.pk, driver=driver)


def test_a_lost_switch_off_task_is_made_up_by_the_expiry_sweep(channel, v2_driver, django_capture_on_commit_callbacks):
    # given offers switched off, and the withdrawal task lost (never run after the commit)
    driver = v2_driver()
    order = receive_order(channel)
    offer = pending(order)
    with django_capture_on_commit_callbacks(execute=False):
        switch_set(name="v2_offers", active=False, actor=STAFF)
    assert Offer.objects.get(pk=offer.pk).state == Offer.State.PENDING
    # when the expiry sweep runs (long before the offer's own deadline)
    expire_offers_due.apply()
    # then the offer is withdrawn and the order assigned the v1 way, once
    offer.refresh_from_db()
    order.refresh_from_db()
    assert (offer.state, offer.withdrawn_reason) == (Offer.State.WITHDRAWN, Offer.WithdrawnReason.SWITCHED_OFF)
    assert (order.status, order.driver) == (Order.Status.ASSIGNED, driver)
    expire_offers_due.apply()
    assert AuditEvent.objects.filter(kind="offer.withdrawn").count() == 1


def test_the_expiry_sweep_leaves_offers_alone_while_the_switch_is_on(channel, v2_driver):
    v2_driver()
    offer = pending(receive_order(channel))
    expire_offers_due.apply()
    assert Offer.objects.get(pk=offer.pk).state == Offer.State.PENDING


def test_cancelling_the_order_withdraws_its_offer(channel, v2_driver):
    driver = v2_driver()
    order = receive_order(channel)
    offer = pending(order)
    order_usecases.order_cancel(order_id=order.pk, actor=STAFF, reason="shop cancelled")
    offer.refresh_from_db()
    assert (offer.state, offer.withdrawn_reason) == (Offer.State.WITHDRAWN, Offer.WithdrawnReason.ORDER_CANCELLED)
    with pytest.raises(OfferWithdrawn):
        offer_usecases.offer_accept(offer_id=offer.pk, driver=driver)
    assert Driver.objects.get(pk=driver.pk).active_order_count == 0


def test_fanout_offers_several_drivers_and_the_first_accept_takes_it(channel, v2_driver):
    zone = ZoneFactory()
    zone.offer_fanout = 3
    zone.save()
    drivers = [v2_driver() for _ in range(3)]
    order = receive_order(channel)
    offers = list(Offer.objects.filter(order=order, state=Offer.State.PENDING))
    assert {o.driver for o in offers} == set(drivers)
    winner, *losers = offers
    offer_usecases.offer_accept(offer_id=winner.pk, driver=winner.driver)
    for loser in losers:
        with pytest.raises(OfferTaken):
            offer_usecases.offer_accept(offer_id=loser.pk, driver=loser.driver)
        loser.refresh_from_db()
        assert loser.withdrawn_reason == Offer.WithdrawnReason.TAKEN


def test_a_driver_holds_at_most_one_pending_offer(channel, v2_driver):
    only = v2_driver(capacity=3)
    first = receive_order(channel)
    second = receive_order(channel)
    assert pending(first).driver == only
    assert not Offer.objects.filter(order=second).exists()
    assert Order.objects.get(pk=second.pk).status == Order.Status.UNASSIGNED


def test_someone_elses_offer_does_not_exist_for_you(channel, v2_driver):
    v2_driver()
    offer = pending(receive_order(channel))
    stranger = v2_driver()
    with pytest.raises(dispatch_services.NotFound):
        offer_usecases.offer_accept(offer_id=offer.pk, driver=stranger)
    with pytest.raises(dispatch_services.NotFound):
        offer_usecases.offer_decline(offer_id=offer.pk, driver=stranger)
    offer.refresh_from_db()
    assert offer.state == Offer.State.PENDING


def test_a_declined_offer_cannot_then_be_accepted(channel, v2_driver):
    driver = v2_driver()
    offer = pending(receive_order(channel))
    offer_usecases.offer_decline(offer_id=offer.pk, driver=driver)
    with pytest.raises(OfferAlreadyAnswered):
        offer_usecases.offer_accept(offer_id=offer.pk, driver=driver)


def test_going_offline_withdraws_the_pending_offer_and_offers_the_next_driver(channel, v2_driver, django_capture_on_commit_callbacks):
    v2_driver(), v2_driver()
    order = receive_order(channel)
    offer = pending(order)
    with django_capture_on_commit_callbacks(execute=True):
        driver_go_offline(driver_id=offer.driver_id, actor=STAFF)
    offer.refresh_from_db()
    assert (offer.state, offer.withdrawn_reason) == (Offer.State.WITHDRAWN, Offer.WithdrawnReason.DRIVER_UNAVAILABLE)
    assert pending(order).driver_id != offer.driver_id


def test_the_sweep_offers_other_waiting_orders_of_a_zone_after_one_was_declined_by_everyone(channel, v2_driver):
    only = v2_driver()
    declined = receive_order(channel)
    offer_usecases.offer_decline(offer_id=pending(declined).pk, driver=only)  # nobody else: it waits
    other = intake_usecases.order_receive(channel=channel, intake=order_intake(), actor=STAFF)[0]
    mark_unassigned(other)  # waiting, older offers none
    dispatching.assign_orders_due()
    assert pending(other).driver == only
    assert not Offer.objects.filter(order=declined, state=Offer.State.PENDING).exists()


def test_the_expiry_sweep_obeys_the_switch_in_the_database_not_a_stale_copy_in_this_process(channel, v2_driver):
    # given a process that saw offers off (waffle remembers it), then another process turned
    # them back on: a flip elsewhere empties only that process's memory
    from waffle import switch_is_active
    from waffle.models import Switch

    switch_set(name="v2_offers", active=False, actor=STAFF)
    assert not switch_is_active("v2_offers")  # remembered here
    Switch.objects.filter(name="v2_offers").update(active=True)  # the flip, made elsewhere
    v2_driver()
    offer = pending(receive_order(channel))
    # when the expiry sweep runs in this process
    expire_offers_due.apply()
    # then the offer made under the switch that is on now stays
    assert Offer.objects.get(pk=offer.pk).state == Offer.State.PENDING


def test_a_switch_off_task_that_runs_after_offers_came_back_on_withdraws_nothing(channel, v2_driver):
    from usecases.offers import offers_switch_off

    v2_driver()
    offer = pending(receive_order(channel))
    assert offers_switch_off() == 0  # late: the switch is on again by the time it runs
    assert Offer.objects.get(pk=offer.pk).state == Offer.State.PENDING
