"""Ops act on escalations in admin, each action through a service and on the record with the
user; support can read escalations and change nothing; edits of the matrix are audited."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps

from audit.models import AuditEvent
from dispatch.models import Order
from escalation import services
from escalation.models import AlertKind, AlertRoute, Escalation, Team
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory, staff_member
from tests.helpers import receive_order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups", "ownership", "escalation_permissions")]
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
URL = "/admin/escalation/escalation/"


@pytest.fixture
def escalation_permissions(staff_groups):
    import importlib

    importlib.import_module("escalation.migrations.0002_ownership_policy_and_sweeps").grant(apps)


@pytest.fixture
def escalation(settings):
    ZoneFactory()
    with time_machine.travel(T0, tick=False):
        receive_order(ShopChannelFactory(), code="ADMIN-1")
    services.open_escalations_due(now=T0 + timedelta(seconds=settings.ESCALATION_DEFAULTS["unassigned_limit_s"]))
    return Escalation.objects.get(trigger=AlertKind.ORDER_UNASSIGNED)


def act(client, escalation, action, **fields):
    return client.post(URL, {"action": action, "_selected_action": [escalation.pk], **fields}, follow=True)


def test_ops_acknowledge_then_resolve_with_a_note(client, escalation):
    ops = staff_member("ops")
    client.force_login(ops)
    assert b"1 escalation(s): acknowledged" in act(client, escalation, "acknowledge").content
    page = act(client, escalation, "resolve")
    assert b"Resolve escalations" in page.content
    act(client, escalation, "resolve", reason="shop will deliver itself", apply="1")
    escalation.refresh_from_db()
    assert (escalation.state, escalation.acknowledged_by, escalation.resolved_by, escalation.resolution) == (
        "resolved",
        ops.username,
        ops.username,
        "shop will deliver itself",
    )
    events = AuditEvent.objects.filter(kind__in=["escalation.acknowledged", "escalation.resolved"]).order_by("id")
    assert [(e.kind, e.actor_kind, e.actor_label) for e in events] == [
        ("escalation.acknowledged", "staff", ops.username),
        ("escalation.resolved", "staff", ops.username),
    ]


def test_ops_assign_the_order_by_hand_and_the_escalation_resolves(client, escalation):
    driver = DriverFactory()
    client.force_login(staff_member("ops"))
    act(client, escalation, "assign_to_driver", driver=driver.pk, apply="1")
    order = Order.objects.get(pk=escalation.order_id)
    assert (order.status, order.driver_id) == (Order.Status.ASSIGNED, driver.pk)
    escalation.refresh_from_db()
    assert (escalation.state, escalation.resolution) == ("resolved", "order moved on: assigned")


def test_ops_reassign_extend_and_cancel(client, escalation):
    ops = staff_member("ops")
    client.force_login(ops)
    first = DriverFactory()
    act(client, escalation, "assign_to_driver", driver=first.pk, apply="1")
    second = DriverFactory()
    act(client, escalation, "reassign")
    order = Order.objects.get(pk=escalation.order_id)
    assert order.driver_id == second.pk
    event = AuditEvent.objects.get(kind="order.reassigned")
    assert (event.actor_label, event.data["reason"]) == (ops.username, "by_ops")
    bad = act(client, escalation, "extend", minutes="0", apply="1")
    assert b"Ensure this value is greater than or equal to 1" in bad.content
    assert Order.objects.get(pk=order.pk).limits_extended_until is None
    act(client, escalation, "cancel_order", reason="customer moved away", apply="1")
    assert Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED


def test_extending_an_open_escalation_through_admin(client, escalation):
    client.force_login(staff_member("ops"))
    act(client, escalation, "extend", minutes="20", apply="1")
    order = Order.objects.get(pk=escalation.order_id)
    escalation.refresh_from_db()
    assert order.limits_extended_until is not None
    assert escalation.next_level_at == order.limits_extended_until
    assert AuditEvent.objects.filter(kind="escalation.extended").count() == 1


def test_a_refused_action_shows_why_and_changes_nothing(client, escalation):
    client.force_login(staff_member("ops"))
    services.escalation_resolve(escalation_id=escalation.pk, actor=services.SYSTEM, resolution="done")
    before = AuditEvent.objects.count()
    page = act(client, escalation, "acknowledge")
    assert b"is resolved; it cannot become acknowledged" in page.content
    assert AuditEvent.objects.count() == before


def test_support_reads_escalations_and_cannot_act(client, escalation):
    client.force_login(staff_member("support"))
    assert client.get(URL).status_code == 200
    assert client.get(f"{URL}{escalation.pk}/change/").status_code == 200
    act(client, escalation, "acknowledge")
    escalation.refresh_from_db()
    assert escalation.state == "open"
    assert client.post(f"/admin/escalation/alertroute/{AlertRoute.objects.first().pk}/change/", {}).status_code == 403


def test_ops_edit_the_ownership_matrix_on_the_record(client):
    ops = staff_member("ops")
    client.force_login(ops)
    route = AlertRoute.objects.get(alert="acceptance_low")
    on_call = Team.objects.get(slug="on-call")
    page = client.post(f"/admin/escalation/alertroute/{route.pk}/change/", {"alert": route.alert, "team": on_call.pk, "runbook": route.runbook})
    assert page.status_code == 302
    assert AlertRoute.objects.get(pk=route.pk).team == on_call
    event = AuditEvent.objects.get(kind="alertroute.updated")
    assert (event.actor_label, event.after) == (ops.username, {"team": on_call.pk})


def test_a_teams_channels_are_edited_inline_and_secrets_stay_off_the_record(client):
    client.force_login(staff_member("ops"))
    team = Team.objects.get(slug="on-call")
    existing = list(team.channels.all())
    data = {"name": team.name, "slug": team.slug, "description": team.description}
    data.update({"channels-TOTAL_FORMS": str(len(existing) + 1), "channels-INITIAL_FORMS": str(len(existing))})
    for n, channel in enumerate(existing):  # the existing rows come first, unchanged
        data.update({f"channels-{n}-id": channel.pk, f"channels-{n}-team": team.pk, f"channels-{n}-kind": channel.kind, f"channels-{n}-is_active": "on"})
    new = len(existing)
    data.update({f"channels-{new}-kind": "pagerduty", f"channels-{new}-target": "SECRETROUTINGKEY", f"channels-{new}-is_active": "on"})
    page = client.post(f"/admin/escalation/team/{team.pk}/change/", data)
    assert page.status_code == 302, page.context_data["errors"]
    assert team.channels.filter(kind="pagerduty", target="SECRETROUTINGKEY").exists()
    event = AuditEvent.objects.get(kind="notificationchannel.created")
    assert event.after["target"] == "***"
    assert "SECRETROUTINGKEY" not in str(AuditEvent.objects.values_list("after", "before"))
