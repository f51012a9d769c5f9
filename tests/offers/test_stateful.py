"""Invariants 1 to 9 of DESIGN.md over random sequences of dispatch events (hypothesis).

Every way an order changes hands is a rule: offers answered, lapsed or answered again, v1
assignment, cancellation, pickup and delivery, availability, take-backs by ops (unassign,
reassign, assign by hand) and by the sweeps (a driver offline, a missed pickup, with the
reassignment limit), drivers deactivated and reactivated, and both kill-switches flipped at
any moment."""

import itertools
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import Now
from django.test import TestCase
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.errors import DispatchError
from dispatch.models import Driver, Order, Reassignment, ShopChannel, Zone
from escalation.models import Escalation, EscalationPolicy
from offers.models import Offer
from rollout.services import rollout_set
from tests.factories import DriverFactory
from tests.helpers import order_intake
from usecases import dispatching, reassignment
from usecases import drivers as driver_usecases
from usecases import intake as intake_usecases
from usecases import offers as offer_usecases
from usecases import orders as order_usecases
from usecases.switches import switch_set

OPS = Actor.system("stateful")
counter = itertools.count()


class DispatchMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        n = next(counter)
        self.zone = Zone.objects.create(name=f"Z{n}", slug=f"z{n}", postal_code_prefixes=[f"9{n:04d}"], offer_fanout=2)
        self.channel = ShopChannel.objects.create(token=f"t{n}", name="S", webhook_secret="s" * 20, pickup_lat=52.5, pickup_lon=13.4)
        self.drivers = []
        self.intakes = []
        self.audit_seen, self.audit_seen_up_to = [], 0
        for i in range(4):
            driver = DriverFactory(capacity=1 + i % 2, zones=[self.zone])
            if i % 2 == 0:  # half the drivers speak v2
                Driver.objects.filter(pk=driver.pk).update(v2_connected_at=Now(), app_version="2.5.0")
            self.drivers.append(driver.pk)
        # Two automatic reassignments, then the order escalates instead (the limit is a rule too).
        EscalationPolicy.objects.create(zone=self.zone, max_reassignments=2)
        self.switch_on = True
        # Switches are global: each example starts from the same ones, whatever the last left.
        self._do(lambda: switch_set(name="v2_offers", active=True, actor=OPS))
        self._do(lambda: switch_set(name="v2_auto_reassign", active=True, actor=OPS))

    def _do(self, action):
        # on-commit work (withdrawals, sweeps, notifications) runs as it would in production
        with TestCase.captureOnCommitCallbacks(execute=True):
            try:
                action()
            except DispatchError:
                pass  # a refusal is a valid outcome; the invariants below say it changed nothing wrong

    def orders(self):
        return Order.objects.filter(zone=self.zone)

    def offers(self):
        return Offer.objects.filter(order__zone=self.zone)

    def snapshot(self):
        return (
            list(self.orders().order_by("pk").values_list("pk", "status", "driver_id")),
            list(self.offers().order_by("pk").values_list("pk", "state")),
            list(Driver.objects.filter(pk__in=self.drivers).order_by("pk").values_list("pk", "active_order_count", "availability")),
            AuditEvent.objects.count(),
        )

    @rule()
    def order_arrives(self):
        intake = order_intake(code="H", postal_code=self.zone.postal_code_prefixes[0] + "1")
        self.intakes.append(intake)

        def arrive():
            order = intake_usecases.order_receive(channel=self.channel, intake=intake, actor=OPS)[0]
            dispatching.order_dispatch(order_id=order.pk)

        self._do(arrive)

    @precondition(lambda self: self.intakes)
    @rule(data=st.data())
    def shop_sends_an_order_again(self, data):  # invariant 6
        intake = data.draw(st.sampled_from(self.intakes))
        before = self.snapshot()
        order, created = intake_usecases.order_receive(channel=self.channel, intake=intake, actor=OPS)
        assert not created and self.snapshot() == before

    @rule(
        index=st.integers(0, 3),
        bad=st.sampled_from(["no_such_offer", "break_too_long", "break_of_nothing", "unknown_driver"]),
    )
    def a_driver_sends_something_invalid(self, index, bad):  # invariant 9
        driver = Driver.objects.get(pk=self.drivers[index])
        before = self.snapshot()
        call = {
            "no_such_offer": lambda: offer_usecases.offer_accept(offer_id=2**62, driver=driver),
            "break_too_long": lambda: driver_usecases.break_start(driver_id=driver.pk, minutes=10**6, actor=OPS),
            "break_of_nothing": lambda: driver_usecases.break_start(driver_id=driver.pk, minutes=0, actor=OPS),
            "unknown_driver": lambda: driver_usecases.driver_go_online(driver_id=2**62, actor=OPS),
        }[bad]
        try:
            call()
        except DispatchError as refusal:
            assert refusal.code in ("not_found", "invalid_input", "illegal_transition", "driver_unavailable"), refusal.code
        else:
            raise AssertionError(f"{bad} was accepted")
        assert self.snapshot() == before

    @precondition(lambda self: self.offers().exists())
    @rule(data=st.data(), index=st.integers(0, 3), accept=st.booleans())
    def a_driver_answers_someone_elses_offer(self, data, index, accept):  # invariant 8
        offer = data.draw(st.sampled_from(list(self.offers())))
        stranger = Driver.objects.get(pk=self.drivers[index])
        if stranger.pk == offer.driver_id:
            return
        before = self.snapshot()
        answer = offer_usecases.offer_accept if accept else offer_usecases.offer_decline
        try:
            answer(offer_id=offer.pk, driver=stranger)
        except DispatchError as refusal:
            assert refusal.code == "not_found"  # someone else's offer does not exist for them
        else:
            raise AssertionError("a driver answered another driver's offer")
        assert self.snapshot() == before

    @precondition(lambda self: self.offers().filter(state=Offer.State.PENDING).exists())
    @rule(data=st.data(), accept=st.booleans())
    def driver_answers(self, data, accept):
        offer = data.draw(st.sampled_from(list(self.offers().filter(state=Offer.State.PENDING).select_related("driver"))))
        if accept:
            self._do(lambda: offer_usecases.offer_accept(offer_id=offer.pk, driver=offer.driver))
        else:
            self._do(lambda: offer_usecases.offer_decline(offer_id=offer.pk, driver=offer.driver, reason="no"))

    @precondition(lambda self: self.offers().exists())
    @rule(data=st.data())
    def answer_again_or_late(self, data):
        offer = data.draw(st.sampled_from(list(self.offers().select_related("driver"))))
        self._do(lambda: offer_usecases.offer_accept(offer_id=offer.pk, driver=offer.driver))

    @precondition(lambda self: self.offers().filter(state=Offer.State.PENDING).exists())
    @rule()
    def time_passes_and_offers_lapse(self):
        # the deadline passes (moved on the rows, since the sweep reads the database's clock)
        self.offers().filter(state=Offer.State.PENDING).update(expires_at=Now())
        self._do(offer_usecases.expire_offers_due)

    @precondition(lambda self: self.orders().exclude(status__in=Order.TERMINAL_STATUSES).exists())
    @rule(data=st.data())
    def shop_cancels(self, data):
        order = data.draw(st.sampled_from(list(self.orders().exclude(status__in=Order.TERMINAL_STATUSES))))
        self._do(lambda: order_usecases.order_cancel(order_id=order.pk, actor=OPS, reason="shop"))

    @precondition(lambda self: self.orders().filter(status__in=Order.ACTIVE_STATUSES).exists())
    @rule(data=st.data())
    def driver_progresses(self, data):
        order = data.draw(st.sampled_from(list(self.orders().filter(status__in=Order.ACTIVE_STATUSES).select_related("driver"))))
        if order.status == Order.Status.ASSIGNED:
            self._do(lambda: order_usecases.order_pick_up(order_id=order.pk, driver=order.driver))
        else:
            self._do(lambda: order_usecases.order_deliver(order_id=order.pk, driver=order.driver))

    @rule(index=st.integers(0, 3), state=st.sampled_from(["offline", "online", "break", "end_break"]))
    def driver_changes_availability(self, index, state):
        driver_id = self.drivers[index]
        call = {
            "offline": lambda: driver_usecases.driver_go_offline(driver_id=driver_id, actor=OPS),
            "online": lambda: driver_usecases.driver_go_online(driver_id=driver_id, actor=OPS),
            "break": lambda: driver_usecases.break_start(driver_id=driver_id, minutes=10, actor=OPS),
            "end_break": lambda: driver_usecases.break_end(driver_id=driver_id, actor=OPS),
        }[state]
        self._do(call)

    @rule()
    def assignment_sweep(self):
        self._do(dispatching.assign_orders_due)

    @rule(on=st.booleans())
    def ops_flip_offers(self, on):
        self.switch_on = on
        self._do(lambda: switch_set(name="v2_offers", active=on, actor=OPS))

    @precondition(lambda self: self.orders().filter(status=Order.Status.ASSIGNED).exists())
    @rule(data=st.data(), how=st.sampled_from(["unassign", "reassign", "by_hand"]), index=st.integers(0, 3))
    def ops_take_the_order_back(self, data, how, index):
        order = data.draw(st.sampled_from(list(self.orders().filter(status=Order.Status.ASSIGNED))))
        if how == "unassign":

            def unassign():
                order_usecases.order_unassign(order_id=order.pk, actor=OPS)
                dispatching.order_dispatch(order_id=order.pk)

            self._do(unassign)
        elif how == "reassign":
            self._do(lambda: order_usecases.order_reassign(order_id=order.pk, reason="reassigned_by_ops", actor=OPS))
        else:
            self._do(lambda: order_usecases.order_assign_manually(order_id=order.pk, driver_id=self.drivers[index], actor=OPS))

    @precondition(lambda self: self.orders().filter(status__in=Order.WAITING_STATUSES).exists())
    @rule(data=st.data(), index=st.integers(0, 3))
    def ops_assign_a_waiting_order_by_hand(self, data, index):
        order = data.draw(st.sampled_from(list(self.orders().filter(status__in=Order.WAITING_STATUSES))))
        self._do(lambda: order_usecases.order_assign_manually(order_id=order.pk, driver_id=self.drivers[index], actor=OPS))

    @precondition(lambda self: self.orders().filter(status=Order.Status.ASSIGNED).exists())
    @rule()
    def pickup_limit_passes_and_the_sweep_takes_orders_back(self):
        # the pickup limit passes for every assigned order (moved on the rows: the sweep reads the database's clock)
        self.orders().filter(status=Order.Status.ASSIGNED).update(assigned_at=Now() - timedelta(hours=2))
        self._do(reassignment.reassign_orders_due)
        self._do(reassignment.escalate_orders_due)  # what was not reassigned escalates

    @rule(index=st.integers(0, 3), active=st.booleans())
    def ops_deactivate_or_reactivate_a_driver(self, index, active):
        user = Driver.objects.select_related("user").get(pk=self.drivers[index]).user
        user.is_active = active

        def save():  # as the user admin's change form does: the save, then the use case, in one transaction
            with transaction.atomic():
                user.save()
                if not active:
                    driver_usecases.driver_deactivated(user_id=user.pk)

        self._do(save)

    @rule(on=st.booleans())
    def ops_flip_auto_reassign(self, on):
        self._do(lambda: switch_set(name="v2_auto_reassign", active=on, actor=OPS))

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def one_winner_per_order(self):  # invariant 1
        assert not self.offers().values("order").annotate(n=Count("id", filter=Q(state="accepted"))).filter(n__gt=1).exists()
        for order in self.orders().filter(status__in=Order.ACTIVE_STATUSES):
            assert order.driver_id is not None
            accepted = self.offers().filter(order=order, state=Offer.State.ACCEPTED).first()
            if accepted is not None:
                assert accepted.driver_id == order.driver_id

    @invariant()
    def capacity_and_one_pending_offer(self):  # invariant 2
        for driver in Driver.objects.filter(pk__in=self.drivers):
            held = Order.objects.filter(driver=driver, status__in=Order.ACTIVE_STATUSES).count()
            assert held == driver.active_order_count <= driver.capacity
            assert Offer.objects.filter(driver=driver, state=Offer.State.PENDING).count() <= 1
        for offer in self.offers().filter(state=Offer.State.PENDING).select_related("driver", "order"):
            assert offer.order.status in Order.WAITING_STATUSES
            assert offer.driver.availability == Driver.Availability.AVAILABLE

    @invariant()
    def every_state_is_on_the_record(self):  # invariant 3
        for order in self.orders():
            last = AuditEvent.objects.filter(order_id=order.pk, kind__startswith="order.").exclude(kind="order.cancel_before_receipt").latest("id")
            assert last.after["status"] == order.status
        for offer in self.offers():
            assert AuditEvent.objects.filter(subject_type="offer", subject_id=str(offer.pk)).latest("id").after["state"] == offer.state
        for driver in Driver.objects.filter(pk__in=self.drivers):
            events = AuditEvent.objects.filter(subject_type="driver", subject_id=str(driver.pk), kind__startswith="driver.")
            if events.exists():
                assert events.latest("id").after["availability"] == driver.availability

    @invariant()
    def taken_back_orders_are_on_the_record(self):  # invariants 1 and 3 across take-backs
        for offer in self.offers().filter(state=Offer.State.TAKEN_BACK):
            # the driver lost the order after accepting it: it is someone else's, waiting or over,
            # unless ops gave it back to them by hand afterwards
            if Order.objects.filter(pk=offer.order_id, driver_id=offer.driver_id, status__in=Order.ACTIVE_STATUSES).exists():
                assert AuditEvent.objects.filter(order_id=offer.order_id, kind="order.assigned").latest("id").data.get("reason") == "manual"
        for order in self.orders():
            # never more automatic reassignments than the limit; past it, an escalation instead.
            # Every take-back is on record; only the automatic ones count towards the limit.
            automatic = Reassignment.objects.filter(order=order, reason__in=Reassignment.AUTOMATIC_REASONS).count()
            assert automatic <= 2
            assert order.reassign_count == automatic

    @invariant()
    def no_order_waits_silently_past_its_pickup_limit(self):  # invariant 5
        for order in self.orders().filter(status=Order.Status.ASSIGNED, assigned_at__lte=Now() - timedelta(hours=1)):
            assert Escalation.objects.filter(order=order, state__in=["open", "acknowledged"]).exists(), order

    @invariant()
    def a_deactivated_driver_gets_no_work(self):  # invariant 8: revoked credentials
        for driver in Driver.objects.filter(pk__in=self.drivers, user__is_active=False):
            assert driver.availability == Driver.Availability.OFFLINE
            assert not Offer.objects.filter(driver=driver, state=Offer.State.PENDING).exists()
            deactivated_at = AuditEvent.objects.filter(subject_type="driver", subject_id=str(driver.pk), after__availability="offline").latest("id").pk
            assert not AuditEvent.objects.filter(kind="order.assigned", driver_id=driver.pk, pk__gt=deactivated_at).exists()

    @invariant()
    def the_audit_trail_only_grows(self):  # invariant 4: no event is changed or removed
        seen = list(AuditEvent.objects.filter(pk__lte=self.audit_seen_up_to).order_by("pk").values_list("pk", "kind", "before", "after"))
        assert seen[: len(self.audit_seen)] == self.audit_seen
        self.audit_seen = list(AuditEvent.objects.order_by("pk").values_list("pk", "kind", "before", "after"))
        self.audit_seen_up_to = self.audit_seen[-1][0] if self.audit_seen else 0

    @invariant()
    def switch_off_means_v1(self):  # invariant 7
        if not self.switch_on:
            assert not self.offers().filter(state=Offer.State.PENDING).exists()


@pytest.mark.django_db
def test_dispatch_invariants_hold_over_random_event_sequences(ownership):
    rollout_set(feature="v2_offers", percentage=100, actor=OPS)
    switch_set(name="v2_availability", active=True, actor=OPS)
    rollout_set(feature="v2_availability", percentage=100, actor=OPS)
    rollout_set(feature="v2_auto_reassign", percentage=100, actor=OPS)
    run_state_machine_as_test(
        DispatchMachine,
        settings=settings(max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)),
    )
