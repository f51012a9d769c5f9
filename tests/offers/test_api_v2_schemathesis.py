"""Property-based checks of the driver API v2 against its own OpenAPI schema (schemathesis):
whatever a client sends, never a 5xx, and every answer keeps to the schema."""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.dispatch.test_api_schemathesis import keep_test_connection  # noqa: F401 (a fixture)
from tests.factories import ShopChannelFactory, ZoneFactory
from tests.helpers import receive_order

schema = schemathesis.openapi.from_wsgi("/api/schema/v2/", WSGIHandler())


@pytest.fixture
def v2_driver_token(db, keep_test_connection, v2_offers_on, v2_availability_on, v2_driver):  # noqa: F811
    ZoneFactory()
    driver = v2_driver(capacity=3)
    receive_order(ShopChannelFactory())  # a pending offer for the driver to answer
    return Token.objects.create(user=driver.user).key


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_driver_api_v2_never_errors_and_keeps_to_its_schema(case, v2_driver_token):
    # Not "every schema-valid body is accepted": a break needs `minutes`, and at most
    # DISPATCH_MAX_BREAK_MIN of them, rules across fields and settings that OpenAPI does not
    # state. Such a body gets a 400 that names the field, which the other checks still hold.
    case.call_and_validate(headers={"Authorization": f"Token {v2_driver_token}"}, excluded_checks=[positive_data_acceptance])
