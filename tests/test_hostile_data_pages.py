"""Nothing a shop or a driver sends is rendered as HTML: every staff page and every registered
admin's list and change page shows an order code and a driver name made of HTML only escaped."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import reverse

from audit.models import AuditEvent
from dispatch.models import Order
from escalation.models import Escalation
from escalation.services import open_escalations_due
from tests.factories import DriverFactory, ShopChannelFactory, UserFactory, ZoneFactory
from tests.helpers import receive_order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups")]

HOSTILE_CODE = "<img src=x onerror=alert(1)>"
HOSTILE_NAME = "<script>alert(2)</script>"


@pytest.fixture
def hostile_world(settings, ownership):
    zone = ZoneFactory()
    driver = DriverFactory(name=HOSTILE_NAME, capacity=1, last_lat=52.52, last_lon=13.39)
    channel = ShopChannelFactory()
    assigned = receive_order(channel, code=HOSTILE_CODE)  # taken by the hostile driver
    waiting = receive_order(channel, code=HOSTILE_CODE + "-2")  # nobody free: it waits
    assert assigned.driver_id == driver.pk and waiting.status == Order.Status.UNASSIGNED
    # an escalation of the waiting order: its admin links the order by its code
    open_escalations_due(now=waiting.received_at + timedelta(seconds=settings.ESCALATION_DEFAULTS["unassigned_limit_s"] + 1))
    assert Escalation.objects.filter(order=waiting).exists()
    return zone, driver, assigned, waiting


def _assert_only_escaped(response, url):
    assert response.status_code == 200, url
    body = response.content.decode()
    assert HOSTILE_CODE not in body and HOSTILE_NAME not in body, url


def test_staff_pages_show_hostile_codes_and_names_only_escaped(client, hostile_world):
    zone, driver, assigned, waiting = hostile_world
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    pages = {
        f"/ops/zones/{zone.slug}/": True,
        f"/ops/zones/{zone.slug}/lists/": True,
        "/ops/zones/": False,
        f"/support/?order={assigned.pk}": True,
        f"/support/?driver={driver.pk}": True,
        f"/support/orders/{assigned.pk}/": True,
        "/": False,
    }
    for url, shows_them in pages.items():
        response = client.get(url)
        _assert_only_escaped(response, url)
        if shows_them:
            body = response.content.decode()
            assert "&lt;img src=x onerror=alert(1)&gt;" in body or "&lt;script&gt;alert(2)&lt;/script&gt;" in body, url


def test_every_registered_admin_shows_hostile_codes_and_names_only_escaped(client, hostile_world):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert AuditEvent.objects.filter(order_code=HOSTILE_CODE).exists()
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        changelist = reverse("admin:{}_{}_changelist".format(*info))
        _assert_only_escaped(client.get(changelist), changelist)
        for obj in model_admin.get_queryset(client.get(changelist).wsgi_request)[:20]:
            change = reverse("admin:{}_{}_change".format(*info), args=[obj.pk])
            _assert_only_escaped(client.get(change), change)
