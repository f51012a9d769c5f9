"""The ops console through Django's test client: actions call services, support only reads."""

import pytest

from audit.models import AuditEvent
from dispatch.models import Driver, Order, Zone
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory, staff_member
from tests.helpers import receive_order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups")]


@pytest.fixture
def waiting_order():
    ZoneFactory()
    return receive_order(ShopChannelFactory())  # no driver yet: it waits


def test_ops_assigns_a_waiting_order_to_a_chosen_driver(client, waiting_order):
    driver = DriverFactory(capacity=1)
    ops = staff_member("ops")
    client.force_login(ops)
    page = client.post("/admin/dispatch/order/", {"action": "assign_to_driver", "_selected_action": [waiting_order.pk]})
    assert page.status_code == 200 and b"Assign orders to a driver" in page.content
    done = client.post(
        "/admin/dispatch/order/", {"action": "assign_to_driver", "_selected_action": [waiting_order.pk], "driver": driver.pk, "apply": "1"}, follow=True
    )
    assert b"1 order(s) assigned" in done.content
    waiting_order.refresh_from_db()
    assert (waiting_order.status, waiting_order.driver) == (Order.Status.ASSIGNED, driver)
    event = AuditEvent.objects.get(kind="order.assigned")
    assert (event.actor_kind, event.actor_label, event.data["reason"]) == ("staff", ops.username, "manual")


def test_ops_cancel_needs_a_reason_and_unassign_frees_the_driver(client, waiting_order):
    driver = DriverFactory(capacity=1)
    client.force_login(staff_member("ops"))
    client.post("/admin/dispatch/order/", {"action": "assign_to_driver", "_selected_action": [waiting_order.pk], "driver": driver.pk, "apply": "1"})
    client.post("/admin/dispatch/order/", {"action": "unassign", "_selected_action": [waiting_order.pk]})
    driver.refresh_from_db()
    assert driver.active_order_count == 0
    no_reason = client.post("/admin/dispatch/order/", {"action": "cancel", "_selected_action": [waiting_order.pk], "reason": "", "apply": "1"})
    assert b"This field is required" in no_reason.content
    assert Order.objects.get(pk=waiting_order.pk).status == Order.Status.UNASSIGNED
    client.post("/admin/dispatch/order/", {"action": "cancel", "_selected_action": [waiting_order.pk], "reason": "shop asked by phone", "apply": "1"})
    order = Order.objects.get(pk=waiting_order.pk)
    assert (order.status, order.cancel_reason) == (Order.Status.CANCELLED, "shop asked by phone")


def test_a_refused_action_shows_the_reason_and_changes_nothing(client, waiting_order):
    full = DriverFactory(capacity=1)
    Driver.objects.filter(pk=full.pk).update(active_order_count=1)
    client.force_login(staff_member("ops"))
    page = client.post(
        "/admin/dispatch/order/", {"action": "assign_to_driver", "_selected_action": [waiting_order.pk], "driver": full.pk, "apply": "1"}, follow=True
    )
    assert b"has no free capacity" in page.content
    assert Order.objects.get(pk=waiting_order.pk).status == Order.Status.UNASSIGNED


def test_ops_edit_of_a_zone_is_audited_with_the_staff_user(client):
    zone = ZoneFactory()
    ops = staff_member("ops")
    client.force_login(ops)
    response = client.post(
        f"/admin/dispatch/zone/{zone.pk}/change/",
        {
            "name": "Mitte Nord",
            "slug": "mitte",
            "area": "",
            "postal_code_prefixes": '["101", "102"]',
            "offer_timeout_s": 30,
            "offer_fanout": 1,
            "is_active": "on",
            "health_amber_wait_s": 120,
            "health_red_wait_s": 600,
            "health_amber_waiting": 3,
            "health_red_waiting": 10,
        },
    )
    assert response.status_code == 302, response.content
    zone.refresh_from_db()
    assert zone.postal_code_prefixes == ["101", "102"]
    event = AuditEvent.objects.get(kind="zone.updated")
    assert event.actor_label == ops.username and event.after["name"] == "Mitte Nord"


def test_a_zone_with_a_broken_polygon_is_refused(client):
    zone = ZoneFactory()
    client.force_login(staff_member("ops"))
    response = client.post(
        f"/admin/dispatch/zone/{zone.pk}/change/",
        {"name": "Mitte", "slug": "mitte", "area": '{"type": "Point", "coordinates": [1, 2]}', "postal_code_prefixes": "[]"},
    )
    assert response.status_code == 200 and b"Polygon or MultiPolygon" in response.content
    assert Zone.objects.get(pk=zone.pk).area is not None
    assert not AuditEvent.objects.filter(kind="zone.updated").exists()


@pytest.mark.parametrize(
    "url", ["/admin/dispatch/order/", "/admin/dispatch/driver/", "/admin/dispatch/zone/", "/admin/audit/auditevent/", "/admin/vendure/webhookevent/"]
)
def test_support_can_read_every_list(client, waiting_order, url):
    client.force_login(staff_member("support"))
    assert client.get(url).status_code == 200


def test_support_cannot_change_anything(client, waiting_order):
    DriverFactory(capacity=1)
    client.force_login(staff_member("support"))
    listing = client.get("/admin/dispatch/order/")
    assert b'name="action"' not in listing.content  # no actions offered
    before = AuditEvent.objects.count()
    client.post("/admin/dispatch/order/", {"action": "cancel", "_selected_action": [waiting_order.pk], "reason": "x", "apply": "1"})
    assert client.post(f"/admin/dispatch/zone/{waiting_order.zone_id}/change/", {"name": "Hacked", "slug": "mitte"}).status_code == 403
    assert client.get("/admin/dispatch/zone/add/").status_code == 403
    assert client.post("/admin/waffle/switch/add/", {"name": "v2_offers", "active": "on"}).status_code == 403
    assert Order.objects.get(pk=waiting_order.pk).status == Order.Status.UNASSIGNED
    assert Zone.objects.get(pk=waiting_order.zone_id).name == "Mitte"
    assert AuditEvent.objects.count() == before


def test_audit_events_are_read_only_even_for_a_superuser(admin_client, waiting_order):
    event = AuditEvent.objects.first()
    assert admin_client.get("/admin/audit/auditevent/add/").status_code == 403
    assert admin_client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    page = admin_client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert page.status_code == 200 and b'type="submit" value="Save"' not in page.content


def test_the_order_audit_link_filters_the_trail(admin_client, waiting_order):
    other = receive_order(waiting_order.channel)
    page = admin_client.get(f"/admin/audit/auditevent/?order_id={waiting_order.pk}")
    assert waiting_order.code.encode() in page.content and other.code.encode() not in page.content


def test_admin_lists_make_a_bounded_number_of_queries(admin_client, waiting_order, django_assert_max_num_queries):
    for _ in range(10):
        DriverFactory()
        receive_order(waiting_order.channel)
    for url in ("/admin/dispatch/order/", "/admin/dispatch/driver/"):
        with django_assert_max_num_queries(15):
            assert admin_client.get(url).status_code == 200


def test_the_landing_page_counts_in_three_queries(client, waiting_order, django_assert_max_num_queries):
    # The counts are for staff (tests/test_anonymous.py): a signed-in support user costs three
    # queries of its own (session, user, group check) before the three counts.
    client.force_login(staff_member("support"))
    with django_assert_max_num_queries(3 + 3):
        page = client.get("/")
    assert page.status_code == 200 and b"Unassigned" in page.content and b"/ws/driver/" in page.content
