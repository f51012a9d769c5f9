"""Ops and support in the admin, in a real Chromium."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from dispatch.models import Order
from tests.factories import DriverFactory, ShopChannelFactory, UserFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("staff_groups")]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def staff_user(group, password="browser-test-pass-123"):
    user = UserFactory(is_staff=True, username=group)
    user.set_password(password)
    user.save()
    user.groups.add(Group.objects.get(name=group))
    return user, password


def log_in(page, live_server, username, password):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_ops_assigns_an_order_by_hand_and_sees_the_audit_event(page, live_server):
    ZoneFactory()
    order = receive_order(ShopChannelFactory(), code="WEB-42")
    driver = DriverFactory(name="Rosa Weber", capacity=1)
    ops, password = staff_user("ops")
    log_in(page, live_server, ops.username, password)

    page.goto(f"{live_server.url}/admin/dispatch/order/")
    page.check(f"input[name=_selected_action][value='{order.pk}']")
    page.select_option("select[name=action]", "assign_to_driver")
    page.click("button[name=index]")
    page.select_option("select[name=driver]", str(driver.pk))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-assign-order.png"))
    page.click("input[name=apply]")
    assert "1 order(s) assigned to Rosa Weber" in page.inner_text(".messagelist")
    page.screenshot(path=str(SCREENSHOTS / "admin-orders.png"))

    page.goto(f"{live_server.url}/admin/dispatch/order/{order.pk}/change/")
    page.click("text=Story of this order")
    rows = page.inner_text("#result_list")
    assert "order.assigned" in rows and "ops" in rows and "order.received" in rows
    page.screenshot(path=str(SCREENSHOTS / "admin-order-audit.png"))
    order.refresh_from_db()
    assert order.status == Order.Status.ASSIGNED and order.driver_id == driver.pk
    assert AuditEvent.objects.filter(kind="order.assigned", actor_label="ops").count() == 1


def test_support_reads_but_cannot_change_anything(page, live_server):
    ZoneFactory()
    order = receive_order(ShopChannelFactory(), code="WEB-43")
    support, password = staff_user("support")
    log_in(page, live_server, support.username, password)

    page.goto(f"{live_server.url}/admin/dispatch/order/")
    assert "WEB-43" in page.inner_text("#result_list")
    assert page.locator("select[name=action]").count() == 0
    page.goto(f"{live_server.url}/admin/dispatch/order/{order.pk}/change/")
    assert page.locator("input[name=_save]").count() == 0
    page.goto(f"{live_server.url}/admin/dispatch/zone/{order.zone_id}/change/")
    assert page.locator("input[name=_save]").count() == 0
    response = page.goto(f"{live_server.url}/admin/dispatch/zone/add/")
    assert response.status == 403
    response = page.goto(f"{live_server.url}/admin/waffle/switch/add/")
    assert response.status == 403
    assert Order.objects.get(pk=order.pk).status == Order.Status.UNASSIGNED
