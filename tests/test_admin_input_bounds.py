"""Bad values in the ops console's forms are form errors that change nothing, never a 500:
zone geometry and postal prefixes, zone thresholds, drivers, escalation policies and levels."""

import json
import math

import pytest
from django.apps import apps
from django.test import Client

from audit.models import AuditEvent
from dispatch import limits
from dispatch.models import Driver, Zone
from escalation.models import EscalationPolicy
from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory, staff_member

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups")]


def circle(vertices: int, lat: float = 52.52, lon: float = 13.40, radius: float = 0.05) -> dict:
    ring = [[lon + radius * math.cos(2 * math.pi * k / vertices), lat + radius * math.sin(2 * math.pi * k / vertices)] for k in range(vertices)]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def square(west: float, south: float, size: float = 0.001) -> list:
    return [[[west, south], [west + size, south], [west + size, south + size], [west, south + size], [west, south]]]


def zone_form(**overrides) -> dict:
    form = {
        "name": "Mitte",
        "slug": "mitte",
        "area": "",
        "postal_code_prefixes": '["101"]',
        "offer_timeout_s": 30,
        "offer_fanout": 1,
        "is_active": "on",
        "health_amber_wait_s": 120,
        "health_red_wait_s": 600,
        "health_amber_waiting": 3,
        "health_red_waiting": 10,
    }
    form.update(overrides)
    return form


@pytest.fixture
def ops_client():
    client = Client(raise_request_exception=False)
    client.force_login(staff_member("ops"))
    return client


HOSTILE_ZONE_FIELDS = {
    # a 100,000-vertex polygon (see below) would be parsed and tested against every later order
    "20k-vertices": {"area": json.dumps(circle(20_000))},
    "just-over-the-vertex-bound": {"area": json.dumps(circle(limits.ZONE_AREA_MAX_VERTICES))},
    "too-many-polygons": {"area": json.dumps({"type": "MultiPolygon", "coordinates": [square(13 + k * 0.002, 52.5) for k in range(101)]})},
    "nan-coordinate": {"area": '{"type": "Polygon", "coordinates": [[[NaN, 52.5], [13.5, 52.5], [13.5, 52.6], [13.4, 52.5]]]}'},
    "infinite-coordinate": {"area": '{"type": "Polygon", "coordinates": [[[13.4, 52.5], [Infinity, 52.5], [13.5, 52.6], [13.4, 52.5]]]}'},
    "longitude-out-of-range": {"area": json.dumps({"type": "Polygon", "coordinates": square(200, 52.5)})},
    "latitude-out-of-range": {"area": json.dumps({"type": "Polygon", "coordinates": square(13.4, 95)})},
    "nul-key": {"area": json.dumps({"type": "Polygon", "coordinates": square(13.4, 52.5), "\u0000": 1})},
    "surrogate-value": {"area": json.dumps({"type": "Polygon", "coordinates": square(13.4, 52.5), "name": "\ud800"})},
    "deeply-nested": {"area": json.dumps({"type": "Polygon", "coordinates": square(13.4, 52.5), "x": [[[[[[[[[[1]]]]]]]]]]})},
    "nul-prefix": {"postal_code_prefixes": '["10\\u0000"]'},
    "surrogate-prefix": {"postal_code_prefixes": '["\\udc00"]'},
    "long-prefix": {"postal_code_prefixes": json.dumps(["1" * (limits.POSTAL_PREFIX_MAX_LENGTH + 1)])},
    "too-many-prefixes": {"postal_code_prefixes": json.dumps([str(n) for n in range(limits.ZONE_POSTAL_PREFIXES_MAX + 1)])},
    "amber-wait-of-a-century": {"health_amber_wait_s": 3_000_000_000},
    "red-wait-past-a-week": {"health_red_wait_s": limits.DURATION_S_MAX + 1},
    "waiting-past-sane": {"health_red_waiting": limits.COUNT_MAX + 1},
}


@pytest.mark.parametrize("fields", HOSTILE_ZONE_FIELDS.values(), ids=HOSTILE_ZONE_FIELDS.keys())
def test_a_hostile_zone_edit_is_a_form_error_and_changes_nothing(ops_client, fields):
    zone = ZoneFactory()
    before = Zone.objects.filter(pk=zone.pk).values().get()
    response = ops_client.post(f"/admin/dispatch/zone/{zone.pk}/change/", zone_form(**fields))
    assert response.status_code == 200, response.status_code
    assert b"errornote" in response.content
    assert Zone.objects.filter(pk=zone.pk).values().get() == before
    assert not AuditEvent.objects.filter(kind="zone.updated").exists()


def test_a_100k_vertex_polygon_is_refused_and_changes_nothing(ops_client):
    zone = ZoneFactory()
    before = Zone.objects.filter(pk=zone.pk).values().get()
    response = ops_client.post(f"/admin/dispatch/zone/{zone.pk}/change/", zone_form(area=json.dumps(circle(100_000))))
    # bigger than DATA_UPLOAD_MAX_MEMORY_SIZE: refused before the form is read; smaller ones by the vertex bound
    assert response.status_code == 400 or (response.status_code == 200 and b"vertices" in response.content)
    assert Zone.objects.filter(pk=zone.pk).values().get() == before
    assert not AuditEvent.objects.filter(kind="zone.updated").exists()


def test_a_zone_at_the_vertex_bound_is_accepted_and_places_orders(ops_client):
    zone = ZoneFactory()
    # a closed ring repeats its first vertex: this many points is exactly the bound
    area = circle(limits.ZONE_AREA_MAX_VERTICES - 1)
    response = ops_client.post(f"/admin/dispatch/zone/{zone.pk}/change/", zone_form(area=json.dumps(area)))
    assert response.status_code == 302, response.content[:2000]
    zone.refresh_from_db()
    assert zone.contains_point(52.52, 13.40) and not zone.contains_point(52.70, 13.40)


@pytest.mark.parametrize(
    "fields, message",
    [({"capacity": 51}, b"at most 50"), ({"capacity": 0}, b"at least 1"), ({"name": "K" * 151}, b"at most 150"), ({"phone": "1" * 33}, b"at most 32")],
)
def test_a_driver_edit_out_of_range_is_a_form_error_and_changes_nothing(ops_client, fields, message):
    driver = DriverFactory()
    form = {"user": driver.user_id, "name": driver.name, "phone": driver.phone, "vehicle": driver.vehicle, "zones": [driver.zones.get().pk], "capacity": 1}
    form.update(fields)
    response = ops_client.post(f"/admin/dispatch/driver/{driver.pk}/change/", form)
    assert response.status_code == 200 and message in response.content
    assert (Driver.objects.get(pk=driver.pk).capacity, Driver.objects.get(pk=driver.pk).name) == (driver.capacity, driver.name)
    assert not AuditEvent.objects.filter(kind="driver.updated").exists()


@pytest.fixture
def escalation_permissions(staff_groups):
    import importlib

    importlib.import_module("escalation.migrations.0002_ownership_policy_and_sweeps").grant(apps)


def policy_form(zone: Zone, **overrides) -> dict:
    form = {
        "zone": zone.pk,
        "unassigned_limit_s": 300,
        "no_candidates_limit_s": "",
        "pickup_limit_s": "",
        "delivery_grace_s": "",
        "driver_silent_limit_s": "",
        "max_offer_misses": "",
        "max_reassignments": "",
        "levels-TOTAL_FORMS": 2,
        "levels-INITIAL_FORMS": 0,
        "levels-MIN_NUM_FORMS": 0,
        "levels-MAX_NUM_FORMS": 1000,
        "levels-0-level": 1,
        "levels-0-after_s": 0,
        "levels-1-level": 2,
        "levels-1-after_s": 600,
    }
    form.update(overrides)
    return form


@pytest.mark.usefixtures("escalation_permissions")
def test_a_sane_escalation_policy_is_saved(ops_client):
    zone = ZoneFactory()
    response = ops_client.post("/admin/escalation/escalationpolicy/add/", policy_form(zone))
    assert response.status_code == 302, response.content[:3000]
    assert EscalationPolicy.objects.get(zone=zone).levels.count() == 2


@pytest.mark.usefixtures("escalation_permissions")
@pytest.mark.parametrize(
    "fields",
    [
        {"unassigned_limit_s": limits.DURATION_S_MAX + 1},
        {"pickup_limit_s": 2**31},
        {"driver_silent_limit_s": -1},
        {"max_offer_misses": limits.COUNT_MAX + 1},
        {"max_reassignments": 21},
        {"levels-1-after_s": limits.DURATION_S_MAX + 1},
        {"levels-1-level": 10},
        {"levels-1-level": 2**40},
    ],
    ids=lambda fields: next(iter(fields)),
)
def test_an_escalation_policy_out_of_range_is_a_form_error_and_stores_nothing(ops_client, fields):
    zone = ZoneFactory()
    response = ops_client.post("/admin/escalation/escalationpolicy/add/", policy_form(zone, **fields))
    assert response.status_code == 200, response.status_code
    assert b"errornote" in response.content or b"errorlist" in response.content
    assert not EscalationPolicy.objects.filter(zone=zone).exists()
    assert not AuditEvent.objects.filter(kind__startswith="escalationpolicy").exists()


@pytest.mark.usefixtures("escalation_permissions")
@pytest.mark.parametrize(
    "url",
    [
        "/admin/dispatch/driver/?created_at__year=99999",
        "/admin/dispatch/order/?placed_at__year=99999",
        "/admin/dispatch/order/?received_at__year=2026&received_at__month=13",
        "/admin/vendure/webhookevent/?received_at__year=99999",
        "/admin/vendure/fulfillmentreport/?shipped_reported_at__year=0",
        "/admin/offers/offer/?created_at__year=99999",
        "/admin/escalation/escalation/?resolved_at__year=99999",
        "/admin/audit/auditevent/?occurred_at__year=99999",
        "/admin/observability/sweeprun/?last_started_at__year=99999",
    ],
)
def test_a_list_filtered_by_an_impossible_date_in_the_query_string_is_no_500(ops_client, url):
    # Django lets any field of the model be filtered from the query string; a year past 9999
    # only fails when the query is compiled, after the list has been accepted.
    response = ops_client.get(url)
    assert response.status_code in (200, 302), response.status_code


def _every_registered_list_with_a_date_field():
    """(url, field) for every registered admin, ours and third-party, and each date field of its model."""
    from django.contrib import admin
    from django.db import models

    for model in admin.site._registry:
        for field in model._meta.concrete_fields:
            if isinstance(field, models.DateField):  # DateTimeField too
                yield f"/admin/{model._meta.app_label}/{model._meta.model_name}/", field.name


@pytest.mark.parametrize(("url", "field"), list(_every_registered_list_with_a_date_field()))
def test_no_registered_list_answers_500_to_an_impossible_date(url, field):
    # Walked from the admin registry, so a newly registered admin (third-party ones included:
    # auth's users, waffle's switches, celery-beat's tasks, tokens) is covered by being registered.
    from django.contrib.auth import get_user_model

    client = Client(raise_request_exception=False)
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x"))
    for query in (f"{field}__year=99999", f"{field}__gte=99999-01-01", f"{field}__year=0"):
        response = client.get(f"{url}?{query}")
        assert response.status_code in (200, 302), (url, query, response.status_code)


def _every_registered_list_with_a_secret_field():
    from django.contrib import admin

    from dispatch.admin import SECRET_LOOKUP_FIELDS

    for model, model_admin in admin.site._registry.items():
        for field in model._meta.concrete_fields:
            if field.name in SECRET_LOOKUP_FIELDS:
                yield f"/admin/{model._meta.app_label}/{model._meta.model_name}/", field.name


SECRET_LISTS = list(_every_registered_list_with_a_secret_field())


def test_the_walk_finds_the_secrets_it_must_guard():
    assert {("/admin/dispatch/shopchannel/", "webhook_secret"), ("/admin/auth/user/", "password"), ("/admin/dispatch/apitoken/", "key")} <= set(SECRET_LISTS)


@pytest.mark.parametrize(("url", "field"), SECRET_LISTS)
def test_no_list_can_be_filtered_by_a_secret(url, field):
    # `?webhook_secret__startswith=a` lists the channel only when the secret starts with "a":
    # anyone who may view the list could read the secret back one character at a time.
    from django.contrib.auth import get_user_model

    ShopChannelFactory()
    client = Client(raise_request_exception=False)
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x"))
    for query in (f"{field}__startswith=a", f"{field}=x", f"{field}__regex=.", f"{field}__isnull=False"):
        response = client.get(f"{url}?{query}")
        assert response.status_code == 400, (url, query, response.status_code)


def _every_registered_list_and_its_text_fields():
    from django.contrib import admin
    from django.db import models

    from dispatch.admin import SECRET_LOOKUP_FIELDS

    for model in admin.site._registry:
        text = [f.name for f in model._meta.concrete_fields if isinstance(f, models.CharField) and f.name not in SECRET_LOOKUP_FIELDS]
        yield f"/admin/{model._meta.app_label}/{model._meta.model_name}/", text


@pytest.mark.parametrize(("url", "text_fields"), list(_every_registered_list_and_its_text_fields()))
def test_no_registered_list_answers_500_to_a_nul_in_its_search_or_filters(url, text_fields):
    # PostgreSQL refuses NUL in text, when the list's query runs
    from django.contrib.auth import get_user_model

    client = Client(raise_request_exception=False)
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x"))
    for query in ("q=%00", "q=a%00b", *(f"{name}=a%00b" for name in text_fields)):
        response = client.get(f"{url}?{query}")
        assert response.status_code in (200, 302), (url, query, response.status_code)
