"""Property-based checks of the driver API against its own OpenAPI schema (schemathesis)."""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode

from tests.factories import DriverFactory, ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order

schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())
# Said rather than left to the defaults: schema-valid data and data that breaks the schema
# (wrong types, out-of-range numbers, NUL where the pattern forbids it), and every check,
# not_a_server_error among them. Bodies schemathesis cannot send (lone surrogates, NaN,
# integers too long to convert) are in test_api_v1_hostile.py.
schema.config.generation.update(modes=list(GenerationMode), allow_x00=True)


@pytest.fixture
def keep_test_connection():
    """Like Django's test client: requests must not close the test's open transaction."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def driver_token(db, keep_test_connection):
    ZoneFactory()
    driver = DriverFactory(capacity=3)
    channel = ShopChannelFactory()
    for _ in range(2):
        receive_order(channel)
    return Token.objects.create(user=driver.user).key


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_driver_api_never_errors_and_keeps_to_its_schema(case, driver_token):
    response = case.call_and_validate(headers={"Authorization": f"Token {driver_token}"})
    assert response.status_code < 500
