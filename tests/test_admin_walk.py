"""Every registered admin, ours and third-party, walked as every kind of visitor.

Driven by admin.site._registry, so an admin registered tomorrow is walked too:
- anonymous visitors and drivers reach no admin page and run no action;
- support and finance read only: no add, change or delete page, and every action they post
  changes nothing and records nothing;
- ops change state only through services: an admin where ops may change or add saves through
  its own code (never ModelAdmin's plain save), no state field is an input on their forms,
  and an action ops run that changes a row writes its audit event;
- no page shows a planted secret to anyone, superusers included.
"""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.authtoken.models import Token
from waffle.models import Switch

from audit.models import AuditEvent
from dispatch.models import Driver, Order, ShopChannel
from escalation import services as escalation_services
from escalation.models import Escalation, NotificationChannel, Team
from tests.factories import DriverFactory, UserFactory, ZoneFactory, staff_member
from tests.helpers import receive_order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups", "ownership")]

PLANTED = "PLANTED"  # every planted secret holds this, and nothing else on any page does
SECRETS = {
    "webhook_secret": "PLANTED-webhook-secret-7f3a9c1d",
    "admin_api_token": "PLANTED-admin-api-token-51be",
    "hook_url": "https://hooks.example/PLANTED-hook-path-92d1",
    "signing_secret": "PLANTED-signing-secret-0c44ab",
    "pagerduty_key": "PLANTED-pd-routing-key-aa17",
    "api_token": "PLANTEDtokenkey0123456789abcdef012345678",
}
ROLES = ["anonymous", "driver", "support", "finance", "ops", "superuser"]
READ_ONLY_ROLES = ["support", "finance"]
# Columns that only a service moves (a compare-and-set with its audit event): never a form input.
STATE_FIELDS = {
    Order: ["status", "driver", "assigned_at", "waiting_reason"],
    Driver: ["availability", "active_order_count", "last_lat", "last_lon"],
    Escalation: ["state", "level", "next_level_at"],
}
# What an action's intermediate page asks for, so the walk gets past it.
ACTION_FORM_DATA = {"apply": "1", "post": "yes", "reason": "walked by the admin test", "minutes": "5"}


@pytest.fixture
def world(settings):
    """One of everything the admins show, with a secret planted in every configurable place."""
    importlib.import_module("escalation.migrations.0002_ownership_policy_and_sweeps").grant(apps)
    ZoneFactory()
    channel = ShopChannel.objects.create(
        token="walk-shop",
        name="Walk Shop",
        webhook_secret=SECRETS["webhook_secret"],
        admin_api_url="https://shop.example/admin-api",
        admin_api_token=SECRETS["admin_api_token"],
        pickup_lat=52.5163,
        pickup_lon=13.3777,
    )
    driver = DriverFactory(name="Walk Driver", capacity=1)
    Token.objects.create(user=driver.user, key=SECRETS["api_token"])
    assigned = receive_order(channel, code="WALK-1")
    waiting = receive_order(channel, code="WALK-2")
    assert assigned.driver_id == driver.pk and waiting.driver_id is None
    escalation_services.open_escalations_due(now=waiting.received_at + timedelta(seconds=settings.ESCALATION_DEFAULTS["unassigned_limit_s"] + 1))
    team = Team.objects.first()
    NotificationChannel.objects.create(team=team, kind="webhook", target=SECRETS["hook_url"], secret=SECRETS["signing_secret"])
    NotificationChannel.objects.create(team=team, kind="pagerduty", target=SECRETS["pagerduty_key"])
    Switch.objects.get_or_create(name="v2_offers")
    every_2s, _ = IntervalSchedule.objects.get_or_create(every=2, period="seconds")
    PeriodicTask.objects.get_or_create(name="Expire offers", defaults={"task": "offers.expire_offers_due", "interval": every_2s})
    return driver


def log_in_as(client, role, driver):
    if role == "anonymous":
        return None
    if role == "driver":
        user = driver.user
    elif role == "superuser":
        user = UserFactory(is_staff=True, is_superuser=True)
    else:
        user = staff_member(role)
    client.force_login(user)
    return user


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def sample_pks(model_admin, request, n=3):
    return [obj.pk for obj in model_admin.get_queryset(request)[:n]]


def snapshot():
    """Every row of every registered model, and how many audit events there are."""
    return {model: sorted(map(repr, model._default_manager.values())) for model in admin.site._registry if model is not AuditEvent}


def assert_no_secret(response, where):
    body = response.content.decode(errors="replace") if not getattr(response, "streaming", False) else ""
    assert PLANTED not in body, f"a planted secret shows on {where}"


@pytest.mark.parametrize("role", ROLES)
def test_every_admin_page_as_every_role(client, world, role):
    user = log_in_as(client, role, world)
    for model, model_admin in admin.site._registry.items():
        changelist = client.get(url(model, "changelist"))
        assert_no_secret(changelist, url(model, "changelist"))
        if role in ("anonymous", "driver"):
            assert changelist.status_code == 302 and "/admin/login/" in changelist["Location"], (role, model)
            assert client.get(url(model, "add")).status_code == 302, (role, model)
            continue
        assert changelist.status_code in (200, 403), (role, model, changelist.status_code)
        request = changelist.wsgi_request
        for pk in sample_pks(model_admin, request):
            for view in ("change", "history", "delete"):
                response = client.get(url(model, view, pk))
                assert response.status_code in (200, 302, 403), (role, model, view, response.status_code)
                assert_no_secret(response, f"{url(model, view, pk)} as {role}")
                if role in READ_ONLY_ROLES and view == "delete":
                    assert response.status_code == 403, (role, model, view)
            if role == "ops" and model in STATE_FIELDS:
                body = client.get(url(model, "change", pk)).content.decode()
                for field in STATE_FIELDS[model]:
                    assert f'name="{field}"' not in body, f"{model.__name__}.{field} is an input for ops"
        if role in READ_ONLY_ROLES:
            assert client.get(url(model, "add")).status_code == 403, (role, model)
        assert user is not None


@pytest.mark.parametrize("role", ["anonymous", "driver", *READ_ONLY_ROLES])
def test_no_action_and_no_write_runs_for_visitors_drivers_and_read_only_staff(client, world, role):
    # Given every action any admin offers (as a superuser sees them), and a picture of every table
    superuser = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(superuser)
    plan = {}
    for model, model_admin in admin.site._registry.items():
        request = client.get(url(model, "changelist")).wsgi_request
        plan[model] = (list(model_admin.get_actions(request)), sample_pks(model_admin, request))
    client.logout()
    log_in_as(client, role, world)
    before, events_before = snapshot(), AuditEvent.objects.count()
    # When the role posts every action, every change form and every delete
    for model, (actions, pks) in plan.items():
        for action in actions:
            client.post(url(model, "changelist"), {"action": action, "_selected_action": pks, "driver": world.pk, **ACTION_FORM_DATA})
        for pk in pks:
            assert client.post(url(model, "change", pk), {}).status_code in (302, 403), (role, model)
            assert client.post(url(model, "delete", pk), {"post": "yes"}).status_code in (302, 403), (role, model)
        assert client.post(url(model, "add"), {}).status_code in (302, 403), (role, model)
    # Then nothing changed and nothing was recorded
    assert snapshot() == before
    assert AuditEvent.objects.count() == events_before


def test_ops_change_nothing_except_through_their_admins_own_save(client, world):
    ops = staff_member("ops")
    client.force_login(ops)
    request = client.get("/admin/").wsgi_request
    for model, model_admin in admin.site._registry.items():
        if model_admin.has_add_permission(request) or model_admin.has_change_permission(request):
            assert type(model_admin).save_model is not admin.ModelAdmin.save_model, f"ops save {model.__name__} rows with ModelAdmin's plain save"


def test_an_action_ops_run_that_changes_a_row_writes_its_audit_event(client, world):
    ops = staff_member("ops")
    client.force_login(ops)
    for model, model_admin in admin.site._registry.items():
        request = client.get(url(model, "changelist")).wsgi_request
        for action in model_admin.get_actions(request):
            pks = sample_pks(model_admin, request, n=1)
            if not pks:
                continue
            before, events_before = snapshot(), AuditEvent.objects.count()
            client.post(url(model, "changelist"), {"action": action, "_selected_action": pks, "driver": world.pk, **ACTION_FORM_DATA})
            if snapshot() != before:
                assert AuditEvent.objects.count() > events_before, f"{model.__name__} action {action} changed rows, unaudited"


def test_the_finance_group_reads_orders_and_nothing_else(client, world):
    finance = Group.objects.get(name="finance")
    assert sorted(finance.permissions.values_list("codename", flat=True)) == ["view_order", "view_shopchannel", "view_zone"]
    client.force_login(staff_member("finance"))
    assert client.get("/admin/dispatch/order/").status_code == 200
    assert client.get("/admin/audit/auditevent/").status_code == 403
    assert client.get("/admin/dispatch/driver/").status_code == 403
    assert client.get("/support/").status_code == 403


def test_secrets_are_set_in_admin_and_empty_inputs_keep_them(client, world):
    # Given ops on the shop channel's form, which shows no secret
    client.force_login(staff_member("ops"))
    channel = ShopChannel.objects.get(token="walk-shop")
    page = client.get(url(ShopChannel, "change", channel.pk)).content.decode()
    assert 'name="webhook_secret"' in page and PLANTED not in page
    form = {
        "token": channel.token,
        "name": "Walk Shop renamed",
        "webhook_secret": "",
        "admin_api_token": "",
        "pickup_address": "",
        "pickup_lat": channel.pickup_lat,
        "pickup_lon": channel.pickup_lon,
        "admin_api_url": channel.admin_api_url,
        "is_active": "on",
    }
    # When they save with the secrets left empty, then with a new webhook secret
    assert client.post(url(ShopChannel, "change", channel.pk), form).status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.webhook_secret, channel.admin_api_token) == ("Walk Shop renamed", SECRETS["webhook_secret"], SECRETS["admin_api_token"])
    assert client.post(url(ShopChannel, "change", channel.pk), {**form, "webhook_secret": "a-new-secret-0123456789"}).status_code == 302
    channel.refresh_from_db()
    assert channel.webhook_secret == "a-new-secret-0123456789"
    # Then the audit trail says it changed, never to what
    edits = AuditEvent.objects.filter(kind="shopchannel.updated")
    assert "a-new-secret" not in repr(list(edits.values("before", "after", "data")))
    assert [e.after.get("webhook_secret") for e in edits.order_by("pk")] == [None, "***"]
