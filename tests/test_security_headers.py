"""A strict Content-Security-Policy and a frame ban on every kind of response: pages, admin, API
JSON, the schema and docs, health, static files, errors."""

import pytest

from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups")]

ANONYMOUS_URLS = [
    "/",
    "/admin/login/",
    "/support/",  # a redirect to log in
    "/api/v1/orders/",  # 401 JSON
    "/api/schema/",
    "/api/docs/",
    "/api/docs/?script=",  # Swagger UI's start-up script, served as a file
    "/healthz",
    "/webhooks/vendure/",  # 405
    "/no/such/page/",  # the 404 page
    "/api/v1/no-such-endpoint/",  # the API's JSON 404
    "/static/staff/zone_map.js",
]
STAFF_URLS = ["/admin/", "/admin/dispatch/order/", "/admin/django_celery_beat/periodictask/", "/support/", "/ops/zones/", "/ops/zones/rows/"]


def directives(response):
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in (p.strip() for p in policy.split(";")) if part}


def assert_strict(response, url):
    assert "Content-Security-Policy" in response, url
    policy = directives(response)
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"], url
    assert policy["script-src"][0] == "'self'", url
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"], url
    assert policy["default-src"] == ["'self'"], url
    if not url.startswith("/static/"):  # WhiteNoise answers files before Django's frame middleware; frame-ancestors covers them
        assert response["X-Frame-Options"] == "DENY", url


@pytest.mark.parametrize("url", ANONYMOUS_URLS)
def test_every_kind_of_response_carries_the_policy(client, url):
    assert_strict(client.get(url), url)


@pytest.mark.parametrize("url", STAFF_URLS)
def test_staff_pages_carry_the_policy(client, url):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(url)
    assert response.status_code == 200, url
    assert_strict(response, url)


def test_api_docs_load_swagger_ui_from_our_static_files_without_inline_script(client):
    body = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in body
    assert "cdn." not in body and "<script>" not in body
