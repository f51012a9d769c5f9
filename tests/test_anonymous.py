"""Anonymous visitors see nothing operational: the landing page offers a sign-in link and no
counts, the staff pages send them to log in, and static files and errors list nothing."""

import pytest

from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory, staff_member
from tests.helpers import receive_order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("staff_groups")]


@pytest.fixture
def busy_day():
    ZoneFactory()
    DriverFactory(name="Private Pat", capacity=1)
    channel = ShopChannelFactory()
    receive_order(channel, code="SECRET-ORDER-1")
    receive_order(channel, code="SECRET-ORDER-2")


def test_the_landing_page_shows_visitors_a_sign_in_link_and_no_counts(client, busy_day):
    body = client.get("/").content.decode()
    assert 'href="/admin/login/?next=/"' in body
    assert "Right now" not in body and '<td class="n">' not in body
    for word in ("Unassigned", "Assigned", "Available", "Pending"):
        assert f"<td>{word}</td>" not in body


def test_drivers_see_no_counts_either(client, busy_day):
    client.force_login(DriverFactory().user)
    assert "Right now" not in client.get("/").content.decode()


def test_staff_see_the_counts(client, busy_day):
    client.force_login(staff_member("support"))
    body = client.get("/").content.decode()
    assert "Right now" in body and "<td>Assigned</td>" in body


@pytest.mark.parametrize(
    "url", ["/support/", "/support/orders/1/", "/support/export.csv", "/ops/zones/", "/ops/zones/mitte/", "/ops/zones/mitte/map.json", "/admin/"]
)
def test_staff_pages_send_visitors_to_log_in(client, busy_day, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", ["/static/", "/static/vendor/", "/static/staff/", "/api/", "/api/v1/", "/media/"])
def test_no_listing_of_static_files_or_api_roots(client, url):
    response = client.get(url)
    assert response.status_code == 404
    assert "SECRET-ORDER" not in response.content.decode() and "Private Pat" not in response.content.decode()


def test_the_api_answers_visitors_401_without_data(client, busy_day):
    for url in ("/api/v1/orders/", "/api/v1/me/", "/api/v2/offers/"):
        response = client.get(url)
        assert response.status_code == 401 and "SECRET-ORDER" not in response.content.decode()
