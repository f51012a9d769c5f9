"""Shared fixtures. The suite runs against the machine's real PostgreSQL and Redis (`make test`)."""

import os

import pytest
from django.db import transaction

if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
    raise pytest.UsageError("The tests run against PostgreSQL: use `make test` (it sets DATABASE_URL and REDIS_URL).")

from django.db.backends.postgresql.operations import DatabaseOperations


def _flush_past_audit_triggers(self, sql_list):  # type: ignore[no-untyped-def]
    # Transactional tests empty every table between tests with TRUNCATE, which the audit
    # table's trigger refuses (as it must in production). The test database's owner may
    # skip triggers for that one transaction; nothing else in the suite does.
    with transaction.atomic(using=self.connection.alias, savepoint=self.connection.features.can_rollback_ddl), self.connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for sql in sql_list:
            cursor.execute(sql)


DatabaseOperations.execute_sql_flush = _flush_past_audit_triggers  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _celery_runs_tasks_inline(settings):
    """Tasks run in the test's process, right where they are enqueued (after commit)."""
    from dispatch.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def actor():
    from audit.actors import Actor

    return Actor.system("test")


@pytest.fixture
def staff_groups(db):
    """The ops, support and finance groups, made by the data migrations' own code.

    Transactional tests empty every table afterwards, data migrations' rows included, so
    tests that need the groups ask for them rather than trusting they survived.
    """
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    if Group.objects.filter(name__in=["ops", "support"]).count() < 2:
        importlib.import_module("dispatch.migrations.0002_staff_groups").create_groups(apps, None)
    if not Group.objects.filter(name="finance").exists():
        importlib.import_module("dispatch.migrations.0008_finance_group").create_finance_group(apps, None)
    importlib.import_module("proof.migrations.0003_staff_see_proofs").grant(apps, None)  # idempotent


@pytest.fixture
def v2_offers_on(db):
    """v2 offers switched on for every driver whose app speaks v2."""
    from audit.actors import Actor
    from rollout.services import rollout_set
    from usecases.switches import switch_set

    switch_set(name="v2_offers", active=True, actor=Actor.system("test"))
    rollout_set(feature="v2_offers", percentage=100, actor=Actor.system("test"))


@pytest.fixture
def v2_availability_on(db):
    """v2 availability (breaks, heartbeats, silence) switched on for every v2 app."""
    from audit.actors import Actor
    from rollout.services import rollout_set
    from usecases.switches import switch_set

    switch_set(name="v2_availability", active=True, actor=Actor.system("test"))
    rollout_set(feature="v2_availability", percentage=100, actor=Actor.system("test"))


@pytest.fixture
def v2_driver():
    """Make a v2 driver: one whose app has opened the v2 socket."""
    from django.utils import timezone

    from tests.factories import DriverFactory

    def make(**kwargs):
        return DriverFactory(v2_connected_at=timezone.now(), app_version="2.3.0", **kwargs)

    return make


@pytest.fixture
def ownership(db):
    """The ownership matrix, teams and default escalation policy, made by the data migration's
    own code (transactional tests empty every table, data migrations' rows included)."""
    import importlib

    from django.apps import apps

    importlib.import_module("escalation.migrations.0002_ownership_policy_and_sweeps").seed(apps)


@pytest.fixture
def auto_reassign_on(db):
    """v2 automatic reassignment switched on for every driver."""
    from audit.actors import Actor
    from rollout.services import rollout_set
    from usecases.switches import switch_set

    switch_set(name="v2_auto_reassign", active=True, actor=Actor.system("test"))
    rollout_set(feature="v2_auto_reassign", percentage=100, actor=Actor.system("test"))


@pytest.fixture(autouse=True)
def _empty_cache():
    """Figures cached for a few seconds (the dashboard's last hour, the arrival estimates'
    travel profiles) never leak between tests."""
    from django.core.cache import cache

    from eta.selectors import travel_forget

    cache.clear()
    travel_forget()
    yield
    cache.clear()
    travel_forget()


@pytest.fixture
def outbound_to_loopback(settings):
    """The tests' fake servers (shop, hooks, push gateway) listen on 127.0.0.1, which the
    service never calls unless DISPATCH_OUTBOUND_ALLOWED_NETWORKS allows it."""
    import ipaddress

    settings.DISPATCH_OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
