"""A presented API token that could not be a stored one is refused as unknown (401), never a 500."""

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


# Header values reach Django as bytes read as Latin-1 (ASGI), so "é" stands for everything
# beyond ASCII; a lone surrogate cannot arrive in a real header at all.
@pytest.mark.parametrize("key", ["abc\x00def", "é" * 3, "x" * 5000, "0123456789abcdef0123456789abcdef01234567\x00"])
def test_a_malformed_token_is_a_401_not_a_500(key):
    client = APIClient(raise_request_exception=False)
    response = client.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 401, response.status_code
