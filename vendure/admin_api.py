"""A small client for the shop's Admin API (GraphQL at /admin-api).

What it raises says only what kind of failure it was ("timeout", "HTTP 503", "shop refused:
FORBIDDEN"): never the shop's own text, which could echo the token or, for an address that
is not a shop at all, what an internal service answered.
"""

import json
import re
from typing import Any

from django.conf import settings

from dispatch.outbound import OutboundFailed, outbound_post

# Vendure's error codes (ErrorResult.errorCode, errors[].extensions.code) look like this;
# anything else the shop says is not recorded.
_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
MAX_RESPONSE_BYTES = 1024 * 1024


def _error_code(value: Any) -> str:
    return value if isinstance(value, str) and _ERROR_CODE.fullmatch(value) else "UNKNOWN"


def _graphql_error_code(error: Any) -> str:
    extensions = error.get("extensions") if isinstance(error, dict) else None
    return _error_code(extensions.get("code") if isinstance(extensions, dict) else None)


class VendureUnavailable(Exception):
    """The shop did not answer usefully (network, timeout, 5xx, 429): worth retrying."""


class VendureRejected(Exception):
    """The shop answered and said no (GraphQL error or an error result): retrying won't help."""

    def __init__(self, error_code: str) -> None:
        super().__init__(f"shop refused: {error_code}")
        self.error_code = error_code


ADD_FULFILLMENT = """
mutation AddFulfillment($input: FulfillOrderInput!) {
  addFulfillmentToOrder(input: $input) {
    __typename
    ... on Fulfillment { id state trackingCode }
    ... on ErrorResult { errorCode message }
  }
}
"""

TRANSITION_FULFILLMENT = """
mutation TransitionFulfillment($id: ID!, $state: String!) {
  transitionFulfillmentToState(id: $id, state: $state) {
    __typename
    ... on Fulfillment { id state }
    ... on ErrorResult { errorCode message }
  }
}
"""

ORDER_FULFILLMENTS = """
query OrderFulfillments($id: ID!) {
  order(id: $id) { id fulfillments { id state trackingCode } }
}
"""


# The error code recorded when a shop answers 200 with something that is not the contract.
BAD_RESPONSE = "BAD_RESPONSE"


class VendureAdminClient:
    def __init__(self, *, url: str, token: str, channel_token: str, timeout_s: float | None = None) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "vendure-token": channel_token}
        self.timeout_s = timeout_s if timeout_s is not None else settings.VENDURE_TIMEOUT_S

    def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        content = json.dumps({"query": query, "variables": variables}).encode()
        try:
            response = outbound_post(
                self.url,
                content=content,
                headers={**self.headers, "Content-Type": "application/json"},
                timeout_s=self.timeout_s,
                max_response_bytes=MAX_RESPONSE_BYTES,
            )
        except OutboundFailed as exc:
            raise VendureUnavailable(exc.category) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise VendureUnavailable(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise VendureRejected(f"HTTP_{response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise VendureUnavailable("bad response") from exc
        if not isinstance(body, dict):
            raise VendureUnavailable("bad response")
        if body.get("errors"):
            errors = body["errors"] if isinstance(body["errors"], list) else [None]
            raise VendureRejected(",".join(sorted({_graphql_error_code(error) for error in errors})[:3]))
        data = body.get("data") or {}
        if not isinstance(data, dict):
            raise VendureRejected(BAD_RESPONSE)
        return data

    @staticmethod
    def _result(data: dict[str, Any], field: str) -> dict[str, Any]:
        result = data.get(field) or {}
        if not isinstance(result, dict):
            raise VendureRejected(BAD_RESPONSE)
        if "errorCode" in result:
            raise VendureRejected(_error_code(result["errorCode"]))
        return result

    def add_fulfillment(self, *, lines: list[dict[str, Any]], method: str, tracking_code: str) -> str:
        variables = {
            "input": {
                "lines": lines,
                "handler": {
                    "code": "manual-fulfillment",
                    "arguments": [{"name": "method", "value": method}, {"name": "trackingCode", "value": tracking_code}],
                },
            }
        }
        fulfillment_id = self._result(self._call(ADD_FULFILLMENT, variables), "addFulfillmentToOrder").get("id")
        # An answer of the right shape or a refusal: a shop that answers anything else is refused,
        # not retried for ever, and what we store fits its column.
        if not isinstance(fulfillment_id, (str, int)) or isinstance(fulfillment_id, bool) or not 0 < len(str(fulfillment_id)) <= 64:
            raise VendureRejected(BAD_RESPONSE)
        return str(fulfillment_id)

    def transition_fulfillment(self, *, fulfillment_id: str, state: str) -> None:
        self._result(self._call(TRANSITION_FULFILLMENT, {"id": fulfillment_id, "state": state}), "transitionFulfillmentToState")

    def fulfillment_with_tracking_code(self, *, order_id: str, tracking_code: str) -> dict[str, Any] | None:
        order = self._call(ORDER_FULFILLMENTS, {"id": order_id}).get("order") or {}
        fulfillments = order.get("fulfillments") if isinstance(order, dict) else None
        if not isinstance(fulfillments, list | None):
            raise VendureRejected(BAD_RESPONSE)
        for fulfillment in fulfillments or []:
            if isinstance(fulfillment, dict) and fulfillment.get("trackingCode") == tracking_code:
                fulfillment_id = fulfillment.get("id")
                if not isinstance(fulfillment_id, (str, int)) or not 0 < len(str(fulfillment_id)) <= 64:
                    raise VendureRejected(BAD_RESPONSE)
                return fulfillment
        return None
