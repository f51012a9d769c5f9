"""The sweeps' schedules in admin (django-celery-beat): support and other read-only staff run no
action, ops' changes are audited, and a sweep's schedule is never renamed, retargeted or deleted."""

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from audit.models import AuditEvent
from tests.factories import staff_member

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups")]
CHANGELIST = "/admin/django_celery_beat/periodictask/"


@pytest.fixture
def sweeps():
    """Two seeded sweeps (transactional tests elsewhere may have emptied the migrations' rows)."""
    every_2s, _ = IntervalSchedule.objects.get_or_create(every=2, period="seconds")
    every_10s, _ = IntervalSchedule.objects.get_or_create(every=10, period="seconds")
    expire, _ = PeriodicTask.objects.get_or_create(name="Expire offers", defaults={"task": "offers.expire_offers_due", "interval": every_2s})
    assign, _ = PeriodicTask.objects.get_or_create(name="Assign waiting orders", defaults={"task": "dispatch.assign_orders_due", "interval": every_10s})
    PeriodicTask.objects.filter(pk__in=[expire.pk, assign.pk]).update(enabled=True)
    return [expire, assign]


@pytest.mark.parametrize("action", ["enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks"])
def test_support_runs_no_periodic_task_action(client, sweeps, action):
    # Given support, who may only look
    client.force_login(staff_member("support"))
    before = list(PeriodicTask.objects.order_by("pk").values_list("pk", "enabled"))
    # When they post every action on every sweep
    client.post(CHANGELIST, {"action": action, "_selected_action": [s.pk for s in sweeps]})
    # Then nothing changed and nothing was recorded
    assert list(PeriodicTask.objects.order_by("pk").values_list("pk", "enabled")) == before
    assert not AuditEvent.objects.filter(subject_type="periodic_task").exists()


def test_ops_disable_and_toggle_are_audited_with_the_staff_user(client, sweeps):
    ops = staff_member("ops")
    client.force_login(ops)
    client.post(CHANGELIST, {"action": "disable_tasks", "_selected_action": [sweeps[0].pk]})
    assert PeriodicTask.objects.get(pk=sweeps[0].pk).enabled is False
    event = AuditEvent.objects.get(kind="periodic_task.disabled")
    assert (event.actor_label, event.subject_id, event.before, event.after) == (ops.username, str(sweeps[0].pk), {"enabled": True}, {"enabled": False})
    client.post(CHANGELIST, {"action": "toggle_tasks", "_selected_action": [s.pk for s in sweeps]})
    assert dict(PeriodicTask.objects.filter(pk__in=[s.pk for s in sweeps]).values_list("pk", "enabled")) == {sweeps[0].pk: True, sweeps[1].pk: False}
    assert AuditEvent.objects.filter(kind="periodic_task.enabled").count() == 1
    assert AuditEvent.objects.filter(kind="periodic_task.disabled").count() == 2


def test_ops_run_now_is_audited(client, sweeps, django_capture_on_commit_callbacks):
    client.force_login(staff_member("ops"))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(CHANGELIST, {"action": "run_tasks", "_selected_action": [sweeps[0].pk]})
    assert AuditEvent.objects.filter(kind="periodic_task.run_requested", subject_id=str(sweeps[0].pk)).count() == 1


def test_a_sweeps_schedule_keeps_its_name_and_task_and_cannot_be_deleted(client, sweeps):
    expire = sweeps[0]
    every_5s, _ = IntervalSchedule.objects.get_or_create(every=5, period="seconds")
    client.force_login(staff_member("ops"))
    change = f"{CHANGELIST}{expire.pk}/change/"
    response = client.post(
        change,
        {"name": "Renamed", "task": "offers.something_else", "regtask": "", "enabled": "on", "description": "slower", "interval": every_5s.pk, "args": "[1]"},
    )
    assert response.status_code == 302
    expire.refresh_from_db()
    assert (expire.name, expire.task, expire.args, expire.interval_id, expire.description) == (
        "Expire offers",
        "offers.expire_offers_due",
        "[]",
        every_5s.pk,
        "slower",
    )
    assert AuditEvent.objects.filter(kind="periodictask.updated", subject_id=str(expire.pk)).count() == 1
    user = staff_member("ops")
    user.is_superuser = True
    user.save()
    client.force_login(user)
    assert client.get(f"{CHANGELIST}{expire.pk}/delete/").status_code == 403
    client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [expire.pk], "post": "yes"})
    assert PeriodicTask.objects.filter(pk=expire.pk).exists()


def test_a_schedule_a_sweep_uses_is_not_edited_in_place(client, sweeps):
    client.force_login(staff_member("ops"))
    url = f"/admin/django_celery_beat/intervalschedule/{sweeps[0].interval_id}/change/"
    assert client.post(url, {"every": 3600, "period": "seconds"}).status_code == 403
    assert IntervalSchedule.objects.get(pk=sweeps[0].interval_id).every == 2


@pytest.mark.parametrize(("every", "period"), [(1, "microseconds"), (500, "microseconds"), (2, "hours"), (365, "days")])
def test_a_sweep_cannot_be_timed_to_hammer_the_database_or_to_stop(client, sweeps, every, period):
    # every microsecond would run it flat out; once a year would stop its guarantee unseen
    expire = sweeps[0]
    schedule, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    client.force_login(staff_member("ops"))
    events = AuditEvent.objects.count()
    response = client.post(
        f"{CHANGELIST}{expire.pk}/change/",
        {"name": expire.name, "task": expire.task, "regtask": "", "enabled": "on", "description": "", "interval": schedule.pk, "args": "[]"},
    )
    assert response.status_code in (200, 302)
    expire.refresh_from_db()
    assert expire.interval_id != schedule.pk
    assert AuditEvent.objects.count() == events


def test_a_new_task_running_a_sweep_keeps_to_a_sweeps_interval(client, sweeps):
    schedule, _ = IntervalSchedule.objects.get_or_create(every=1, period="microseconds")
    admin = staff_member("ops")
    admin.is_superuser = True  # ops add no periodic tasks; a superuser may, within the same bound
    admin.save()
    client.force_login(admin)
    response = client.post(
        f"{CHANGELIST}add/",
        {"name": "Expire faster", "task": "offers.expire_offers_due", "regtask": "", "enabled": "on", "interval": schedule.pk, "args": "[]", "kwargs": "{}"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert not PeriodicTask.objects.filter(name="Expire faster").exists()
