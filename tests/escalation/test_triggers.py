"""Each trigger fires at its zone's limit and not before; an escalation opens once per episode,
tells level 1, climbs while nobody acknowledges it, and resolves itself when its order moves on."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.errors import IllegalTransition, InvalidInput
from dispatch.models import Order
from escalation import services
from escalation.models import AlertKind, Escalation, EscalationPolicy, Notification
from offers.models import Offer
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order
from usecases import offers as offer_usecases
from usecases import orders as order_usecases

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
OPS = Actor.system("ops-test")


def escalations(trigger=None, **filters):
    queryset = Escalation.objects.all()
    if trigger:
        queryset = queryset.filter(trigger=trigger)
    return list(queryset.filter(**filters))


def opened_at(seconds, trigger):
    """Run the opening sweep `seconds` after T0; the escalations of `trigger` afterwards."""
    services.open_escalations_due(now=T0 + timedelta(seconds=seconds))
    return escalations(trigger)


@pytest.fixture
def channel(ownership):
    return ShopChannelFactory()


@pytest.fixture
def waiting_order(channel):
    """An order nobody can take (no drivers): waiting, and out of candidates, since T0."""
    ZoneFactory()
    with time_machine.travel(T0, tick=False):
        order = receive_order(channel, code="WAIT-1")
    assert order.status == Order.Status.UNASSIGNED
    return order


@pytest.fixture
def assigned_order(channel):
    """An order assigned directly (v1) to a driver at T0."""
    driver = DriverFactory()
    with time_machine.travel(T0, tick=False):
        order = receive_order(channel, code="ASSIGNED-1")
    assert (order.status, order.driver_id) == (Order.Status.ASSIGNED, driver.pk)
    return order


def test_an_order_unassigned_too_long_escalates_at_the_limit_and_not_before(waiting_order, settings):
    limit = settings.ESCALATION_DEFAULTS["unassigned_limit_s"]
    assert opened_at(limit - 1, AlertKind.ORDER_UNASSIGNED) == []
    [escalation] = opened_at(limit, AlertKind.ORDER_UNASSIGNED)
    assert (escalation.order_id, escalation.state, escalation.level) == (waiting_order.pk, "open", 1)
    assert escalation.episode_started_at == T0
    assert escalation.detail["limit_s"] == limit
    # A rerun opens nothing new.
    assert len(opened_at(limit + 60, AlertKind.ORDER_UNASSIGNED)) == 1
    event = AuditEvent.objects.get(kind="escalation.opened", data__trigger=AlertKind.ORDER_UNASSIGNED)
    assert (event.order_id, event.order_code, event.after) == (waiting_order.pk, "WAIT-1", {"state": "open", "level": 1})


def test_an_order_out_of_candidates_escalates_at_its_limit(waiting_order, settings):
    limit = settings.ESCALATION_DEFAULTS["no_candidates_limit_s"]
    assert Order.objects.get(pk=waiting_order.pk).out_of_candidates_at == T0
    assert AuditEvent.objects.filter(kind="order.out_of_candidates", order_id=waiting_order.pk).count() == 1
    assert opened_at(limit - 1, AlertKind.ORDER_NO_CANDIDATES) == []
    assert len(opened_at(limit, AlertKind.ORDER_NO_CANDIDATES)) == 1


def test_a_zone_with_its_own_policy_uses_its_own_limits(waiting_order):
    EscalationPolicy.objects.create(zone=waiting_order.zone, unassigned_limit_s=30)
    assert opened_at(29, AlertKind.ORDER_UNASSIGNED) == []
    assert len(opened_at(30, AlertKind.ORDER_UNASSIGNED)) == 1


def test_an_order_not_picked_up_in_time_escalates_when_reassignment_is_off(assigned_order, settings):
    limit = settings.ESCALATION_DEFAULTS["pickup_limit_s"]
    assert opened_at(limit - 1, AlertKind.PICKUP_OVERDUE) == []
    [escalation] = opened_at(limit, AlertKind.PICKUP_OVERDUE)
    assert escalation.episode_started_at == T0


def test_an_order_picked_up_but_not_delivered_by_its_promise_escalates_after_the_grace(assigned_order, settings):
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        order_usecases.order_pick_up(order_id=assigned_order.pk, driver=assigned_order.driver)
    promised_at = Order.objects.get(pk=assigned_order.pk).promised_at
    grace = settings.ESCALATION_DEFAULTS["delivery_grace_s"]
    due_after = (promised_at - T0).total_seconds() + grace
    assert opened_at(due_after - 1, AlertKind.DELIVERY_OVERDUE) == []
    assert len(opened_at(due_after, AlertKind.DELIVERY_OVERDUE)) == 1


def test_a_silent_v2_driver_holding_orders_escalates_them_and_is_resolved_when_heard_again(channel, settings):
    driver = DriverFactory(v2_connected_at=T0, app_version="2.3.0", last_heartbeat_at=T0)
    v1_driver = DriverFactory(last_heartbeat_at=None)  # the v1 app sends no heartbeats: never judged by them
    with time_machine.travel(T0, tick=False):
        order = receive_order(channel, code="SILENT-1")
        v1_order = receive_order(channel, code="V1-1")
    assert {order.driver_id, v1_order.driver_id} == {driver.pk, v1_driver.pk}
    silent_order = order if order.driver_id == driver.pk else v1_order
    limit = settings.ESCALATION_DEFAULTS["driver_silent_limit_s"]
    assert opened_at(limit - 1, AlertKind.DRIVER_SILENT) == []
    [escalation] = opened_at(limit, AlertKind.DRIVER_SILENT)
    assert escalation.order_id == silent_order.pk
    from availability.services import driver_heartbeat

    driver_heartbeat(driver_id=driver.pk, now=T0 + timedelta(seconds=limit + 5))
    services.escalations_resolve_moot(now=T0 + timedelta(seconds=limit + 10))
    escalation.refresh_from_db()
    assert (escalation.state, escalation.resolution) == ("resolved", "driver heard again")


def test_an_order_declined_too_many_times_escalates(channel, v2_offers_on, v2_driver):
    zone = ZoneFactory()
    EscalationPolicy.objects.create(zone=zone, max_offer_misses=2)
    first, second = v2_driver(), v2_driver()
    with time_machine.travel(T0, tick=False):
        order = receive_order(channel, code="DECLINED-1")
        offer_usecases.offer_decline(offer_id=Offer.objects.get(order=order, driver=first).pk, driver=first)
    assert opened_at(1, AlertKind.OFFERS_MISSED) == []
    with time_machine.travel(T0, tick=False):
        offer_usecases.offer_decline(offer_id=Offer.objects.get(order=order, driver=second).pk, driver=second)
    [escalation] = opened_at(1, AlertKind.OFFERS_MISSED)
    assert escalation.detail == {"limit": 2, "misses": 2}


def test_levels_climb_until_acknowledged(waiting_order, settings):
    limit = settings.ESCALATION_DEFAULTS["unassigned_limit_s"]
    [escalation] = opened_at(limit, AlertKind.ORDER_UNASSIGNED)
    opened = escalation.opened_at
    assert escalation.next_level_at == opened + timedelta(seconds=600)
    services.raise_escalations_due(now=opened + timedelta(seconds=599))
    escalation.refresh_from_db()
    assert escalation.level == 1
    services.raise_escalations_due(now=opened + timedelta(seconds=600))
    escalation.refresh_from_db()
    assert (escalation.level, escalation.next_level_at) == (2, opened + timedelta(seconds=1800))
    services.escalation_acknowledge(escalation_id=escalation.pk, actor=OPS)
    services.raise_escalations_due(now=opened + timedelta(seconds=3600))
    escalation.refresh_from_db()
    assert (escalation.state, escalation.level, escalation.next_level_at) == ("acknowledged", 2, None)
    levels = list(Notification.objects.filter(escalation=escalation).values_list("event", "level", "team__slug"))
    assert levels == [("raised", 2, "zone-leads"), ("opened", 1, "dispatchers")]
    kinds = list(AuditEvent.objects.filter(subject_type="escalation", subject_id=str(escalation.pk)).order_by("id").values_list("kind", flat=True))
    assert kinds == ["escalation.opened", "escalation.raised", "escalation.acknowledged"]


def test_the_top_level_is_the_last(waiting_order, settings):
    [escalation] = opened_at(settings.ESCALATION_DEFAULTS["unassigned_limit_s"], AlertKind.ORDER_UNASSIGNED)
    far = escalation.opened_at + timedelta(hours=5)
    for _ in range(5):
        services.raise_escalations_due(now=far)
    escalation.refresh_from_db()
    assert (escalation.level, escalation.next_level_at) == (3, None)
    assert Notification.objects.filter(escalation=escalation, event="raised").count() == 2


def test_an_escalation_resolves_itself_when_the_order_moves_on(waiting_order, settings):
    [escalation] = opened_at(settings.ESCALATION_DEFAULTS["unassigned_limit_s"], AlertKind.ORDER_UNASSIGNED)
    driver = DriverFactory()
    order_usecases.order_assign(order_id=waiting_order.pk, driver_id=driver.pk, actor=OPS)
    escalation.refresh_from_db()
    assert (escalation.state, escalation.resolved_by, escalation.resolution) == ("resolved", "dispatch", "order moved on: assigned")
    assert Escalation.objects.filter(order=waiting_order).exclude(state="resolved").count() == 0
    assert Notification.objects.filter(escalation=escalation, event="resolved").count() == 1


def test_acknowledging_or_resolving_twice_is_refused_and_changes_nothing(waiting_order, settings):
    [escalation] = opened_at(settings.ESCALATION_DEFAULTS["unassigned_limit_s"], AlertKind.ORDER_UNASSIGNED)
    services.escalation_resolve(escalation_id=escalation.pk, actor=OPS, resolution="called the shop")
    before = AuditEvent.objects.count()
    with pytest.raises(IllegalTransition):
        services.escalation_acknowledge(escalation_id=escalation.pk, actor=OPS)
    with pytest.raises(IllegalTransition):
        services.escalation_resolve(escalation_id=escalation.pk, actor=OPS, resolution="again")
    with pytest.raises(InvalidInput):
        services.escalation_resolve(escalation_id=escalation.pk, actor=OPS, resolution="   ")
    assert AuditEvent.objects.count() == before


def test_extending_the_limit_holds_new_escalations_and_the_climb_until_then(waiting_order, settings):
    limit = settings.ESCALATION_DEFAULTS["unassigned_limit_s"]
    [escalation] = opened_at(limit, AlertKind.ORDER_UNASSIGNED)
    at = T0 + timedelta(seconds=limit + 10)
    services.escalation_extend(escalation_id=escalation.pk, minutes=30, actor=OPS, now=at)
    escalation.refresh_from_db()
    assert (escalation.state, escalation.next_level_at) == ("open", at + timedelta(minutes=30))
    services.raise_escalations_due(now=at + timedelta(minutes=29))
    escalation.refresh_from_db()
    assert escalation.level == 1
    services.raise_escalations_due(now=at + timedelta(minutes=30))
    escalation.refresh_from_db()
    assert escalation.level == 2
    with pytest.raises(InvalidInput):
        services.escalation_extend(escalation_id=escalation.pk, minutes=0, actor=OPS)
    assert AuditEvent.objects.filter(kind="order.limits_extended", order_id=waiting_order.pk).count() == 1


def test_an_extended_order_opens_no_new_escalation_before_the_extension_ends(waiting_order, settings):
    order_usecases.order_limits_extend(order_id=waiting_order.pk, minutes=60, actor=OPS, now=T0)
    limit = settings.ESCALATION_DEFAULTS["unassigned_limit_s"]
    assert opened_at(limit, AlertKind.ORDER_UNASSIGNED) == []
    assert len(opened_at(3600, AlertKind.ORDER_UNASSIGNED)) == 1


def test_a_new_episode_opens_a_new_escalation(waiting_order, settings):
    limit = settings.ESCALATION_DEFAULTS["unassigned_limit_s"]
    opened_at(limit, AlertKind.ORDER_UNASSIGNED)
    driver = DriverFactory()
    with time_machine.travel(T0 + timedelta(seconds=limit + 60), tick=False):
        order_usecases.order_assign(order_id=waiting_order.pk, driver_id=driver.pk, actor=OPS)
        order_usecases.order_unassign(order_id=waiting_order.pk, actor=OPS)
    assert len(opened_at(limit + 60 + limit - 1, AlertKind.ORDER_UNASSIGNED)) == 1
    both = opened_at(limit + 60 + limit, AlertKind.ORDER_UNASSIGNED)
    assert sorted(e.state for e in both) == ["open", "resolved"]


def test_orders_outside_every_zone_escalate_under_the_default_policy(channel, settings):
    with time_machine.travel(T0, tick=False):
        order = receive_order(channel, code="NOZONE-1", postal_code="99999", lat=None, lon=None)
    assert order.zone_id is None
    [escalation] = opened_at(settings.ESCALATION_DEFAULTS["unassigned_limit_s"], AlertKind.ORDER_UNASSIGNED)
    assert (escalation.order_id, escalation.zone_id) == (order.pk, None)


def test_the_sweep_reads_the_database_clock_by_default(waiting_order):
    assert services.open_escalations_due() >= 1  # T0 lies in the past of the database's now()
    assert timezone.now() > T0


def test_a_zone_policy_of_limits_only_climbs_the_default_levels_and_one_with_levels_its_own(waiting_order):
    from escalation.models import EscalationLevel, Team

    policy = EscalationPolicy.objects.create(zone=waiting_order.zone, unassigned_limit_s=30, no_candidates_limit_s=10**6)
    [escalation] = opened_at(30, AlertKind.ORDER_UNASSIGNED)
    assert escalation.next_level_at == escalation.opened_at + timedelta(seconds=600)  # the default's L2
    EscalationLevel.objects.create(policy=policy, level=1, after_s=0)
    EscalationLevel.objects.create(policy=policy, level=2, after_s=60, team=Team.objects.get(slug="on-call"))
    services.escalation_resolve(escalation_id=escalation.pk, actor=OPS, resolution="test")
    Order.objects.filter(pk=waiting_order.pk).update(status_changed_at=T0 + timedelta(seconds=1))
    opened_at(31, AlertKind.ORDER_UNASSIGNED)  # a new episode: a new escalation, under the zone's own levels
    again = Escalation.objects.get(trigger=AlertKind.ORDER_UNASSIGNED, state="open")
    assert again.next_level_at == again.opened_at + timedelta(seconds=60)
    services.raise_escalations_due(now=again.opened_at + timedelta(seconds=60))
    assert Notification.objects.get(escalation=again, event="raised").team.slug == "on-call"
