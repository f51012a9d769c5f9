"""Tasks survive a dying worker: acknowledged after they run, handed back when the worker is lost."""

from dispatch.celery import app
from vendure.services import REPORT_SWEEP_BUDGET_S


def test_tasks_are_acknowledged_after_they_run_and_given_back_when_the_worker_dies():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True


def test_the_visibility_timeout_outlasts_the_longest_task():
    # Redis redelivers an unacknowledged message after this long: it must not do so while
    # the task still runs (a sweep stops claiming work after its budget).
    assert app.conf.broker_transport_options["visibility_timeout"] >= 10 * REPORT_SWEEP_BUDGET_S
