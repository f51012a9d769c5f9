from datetime import timedelta

import pytest
from django.utils import timezone

from audit.actors import Actor
from audit.models import AuditEvent
from dispatch.errors import DriverUnavailable, IllegalTransition, InvalidInput
from dispatch.models import Driver
from rollout.services import rollout_set
from tests.factories import DriverFactory
from usecases import drivers as driver_usecases
from usecases.switches import switch_set
from usecases.tasks import end_breaks_due

pytestmark = pytest.mark.django_db
ME = Actor.system("test")


def test_a_break_ends_by_itself_at_its_end_time(v2_availability_on, v2_driver):
    driver = v2_driver()
    driver_usecases.break_start(driver_id=driver.pk, minutes=10, actor=ME, now=timezone.now() - timedelta(minutes=11))
    ongoing = v2_driver()
    driver_usecases.break_start(driver_id=ongoing.pk, minutes=10, actor=ME)
    assert driver_usecases.end_breaks_due() == 1
    assert driver_usecases.end_breaks_due() == 0
    assert Driver.objects.get(pk=driver.pk).availability == Driver.Availability.AVAILABLE
    assert Driver.objects.get(pk=ongoing.pk).availability == Driver.Availability.ON_BREAK
    ended = AuditEvent.objects.get(kind="driver.break_ended")
    assert (ended.actor_kind, ended.data) == ("system", {"reason": "break_over"})


@pytest.mark.parametrize("minutes", [0, -5, 121, "10", True])
def test_a_break_of_a_bad_length_is_refused(minutes, v2_availability_on, v2_driver):
    driver = v2_driver()
    with pytest.raises(InvalidInput):
        driver_usecases.break_start(driver_id=driver.pk, minutes=minutes, actor=ME)
    assert Driver.objects.get(pk=driver.pk).availability == Driver.Availability.AVAILABLE


def test_only_an_available_driver_starts_a_break(v2_availability_on, v2_driver):
    driver = v2_driver(availability=Driver.Availability.OFFLINE)
    with pytest.raises(IllegalTransition):
        driver_usecases.break_start(driver_id=driver.pk, minutes=5, actor=ME)


def test_a_v2_driver_gone_silent_goes_offline_and_a_v1_driver_does_not():
    switch_set(name="v2_availability", active=True, actor=ME)
    rollout_set(feature="v2_availability", percentage=100, actor=ME)
    long_ago = timezone.now() - timedelta(minutes=5)
    silent = DriverFactory(v2_connected_at=long_ago, last_heartbeat_at=long_ago)
    alive = DriverFactory(v2_connected_at=long_ago, last_heartbeat_at=timezone.now())
    v1_app = DriverFactory(last_heartbeat_at=long_ago)  # the v1 app never sends heartbeats
    assert driver_usecases.offline_silent_drivers_due() == 1
    assert Driver.objects.get(pk=silent.pk).availability == Driver.Availability.OFFLINE
    assert Driver.objects.get(pk=alive.pk).availability == Driver.Availability.AVAILABLE
    assert Driver.objects.get(pk=v1_app.pk).availability == Driver.Availability.AVAILABLE
    assert AuditEvent.objects.get(kind="driver.offline").data == {"reason": "silent"}


def test_silence_is_not_judged_with_the_switch_off():
    long_ago = timezone.now() - timedelta(minutes=5)
    DriverFactory(v2_connected_at=long_ago, last_heartbeat_at=long_ago)
    assert driver_usecases.offline_silent_drivers_due() == 0


def test_busy_is_derived_from_the_load():
    driver = DriverFactory(capacity=1)
    assert not driver.is_busy
    Driver.objects.filter(pk=driver.pk).update(active_order_count=1)
    driver.refresh_from_db()
    assert driver.is_busy


def test_breaks_need_v2_availability_for_the_driver(v2_driver):
    from dispatch.errors import FeatureOff

    driver = v2_driver()
    with pytest.raises(FeatureOff):
        driver_usecases.break_start(driver_id=driver.pk, minutes=10, actor=ME)  # the switch is off
    switch_set(name="v2_availability", active=True, actor=ME)
    rollout_set(feature="v2_availability", percentage=100, actor=ME)
    v1_app = DriverFactory()
    with pytest.raises(FeatureOff):
        driver_usecases.break_start(driver_id=v1_app.pk, minutes=10, actor=ME)  # a v1 app knows no breaks
    assert Driver.objects.get(pk=v1_app.pk).availability == Driver.Availability.AVAILABLE
    assert driver_usecases.break_start(driver_id=driver.pk, minutes=10, actor=ME).availability == Driver.Availability.ON_BREAK


def test_switching_v2_availability_off_ends_every_break(v2_availability_on, v2_driver, django_capture_on_commit_callbacks):
    driver = v2_driver()
    driver_usecases.break_start(driver_id=driver.pk, minutes=30, actor=ME)
    with django_capture_on_commit_callbacks(execute=True):
        switch_set(name="v2_availability", active=False, actor=ME)
    assert Driver.objects.get(pk=driver.pk).availability == Driver.Availability.AVAILABLE
    assert AuditEvent.objects.filter(kind="driver.break_ended").latest("id").data == {"reason": "switched_off"}


def test_a_deactivated_driver_cannot_come_back_online_until_reactivated():
    driver = DriverFactory(availability=Driver.Availability.OFFLINE)
    driver.user.is_active = False
    driver.user.save()
    with pytest.raises(DriverUnavailable):
        driver_usecases.driver_go_online(driver_id=driver.pk, actor=Actor.system("test"))
    driver.refresh_from_db()
    assert driver.availability == Driver.Availability.OFFLINE
    driver.user.is_active = True
    driver.user.save()
    assert driver_usecases.driver_go_online(driver_id=driver.pk, actor=Actor.system("test")).availability == Driver.Availability.AVAILABLE


def test_a_lost_switch_off_task_is_made_up_by_the_break_sweep(v2_availability_on, v2_driver, django_capture_on_commit_callbacks):
    # given v2 availability switched off, and the task ending every break lost
    driver = v2_driver()
    driver_usecases.break_start(driver_id=driver.pk, minutes=30, actor=ME)
    with django_capture_on_commit_callbacks(execute=False):
        switch_set(name="v2_availability", active=False, actor=ME)
    assert Driver.objects.get(pk=driver.pk).availability == Driver.Availability.ON_BREAK
    # when the break sweep runs, long before the break's own end
    end_breaks_due.apply()
    # then the break is over, once
    assert Driver.objects.get(pk=driver.pk).availability == Driver.Availability.AVAILABLE
    end_breaks_due.apply()
    assert AuditEvent.objects.filter(kind="driver.break_ended").count() == 1


def test_a_switch_off_task_that_runs_after_v2_availability_came_back_on_ends_no_break(v2_availability_on, v2_driver):
    driver = v2_driver()
    driver_usecases.break_start(driver_id=driver.pk, minutes=30, actor=ME)
    assert driver_usecases.breaks_end_all(reason="switched_off") == 0  # late: the switch is on again
    assert Driver.objects.get(pk=driver.pk).availability == Driver.Availability.ON_BREAK
