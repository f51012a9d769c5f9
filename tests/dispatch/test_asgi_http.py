"""The ASGI server's HTTP path refuses a body larger than DISPATCH_MAX_REQUEST_BODY_BYTES as it
arrives (declared or chunked), instead of spooling it to disk for a view to look at."""

import httpx
import pytest

from tests.live.servers import uvicorn_servers

pytestmark = pytest.mark.django_db(transaction=True)
LIMIT = 100_000


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), uvicorn_servers(1, extra_env={"DISPATCH_MAX_REQUEST_BODY_BYTES": str(LIMIT)}) as urls:
        yield urls[0]


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(server):
    response = httpx.post(f"{server}/webhooks/vendure/", content=b"x" * (LIMIT + 1), headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"


def test_a_chunked_body_growing_over_the_limit_is_refused_as_it_arrives(server):
    def chunks():
        for _ in range(20):
            yield b"y" * 10_000  # 200,000 bytes, no Content-Length

    response = httpx.post(f"{server}/api/v2/orders/1/proof/photo/", content=chunks(), headers={"Content-Type": "application/octet-stream"}, timeout=10)
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"


def test_a_body_within_the_limit_reaches_its_view(server):
    response = httpx.post(f"{server}/webhooks/vendure/", content=b"{}", headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 401  # unsigned: the view answered, not the limit
