"""A small client for the shop's Admin API (GraphQL at /admin-api)."""

from typing import Any

import httpx
from django.conf import settings


class VendureUnavailable(Exception):
    """The shop did not answer usefully (network, timeout, 5xx, 429): worth retrying."""


class VendureRejected(Exception):
    """The shop answered and said no (GraphQL error or an error result): retrying won't help."""

    def __init__(self, message: str, error_code: str = "") -> None:
        super().__init__(message)
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


class VendureAdminClient:
    def __init__(self, *, url: str, token: str, channel_token: str, timeout_s: float | None = None) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "vendure-token": channel_token}
        self.timeout_s = timeout_s if timeout_s is not None else settings.VENDURE_TIMEOUT_S

    def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            response = httpx.post(self.url, json={"query": query, "variables": variables}, headers=self.headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise VendureUnavailable(f"shop unreachable: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise VendureUnavailable(f"shop answered {response.status_code}")
        if response.status_code != 200:
            raise VendureRejected(f"shop answered {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
        except ValueError as exc:
            raise VendureUnavailable("shop answered with a body that is not JSON") from exc
        if body.get("errors"):
            raise VendureRejected("; ".join(str(e.get("message")) for e in body["errors"]))
        return body.get("data") or {}

    @staticmethod
    def _result(data: dict[str, Any], field: str) -> dict[str, Any]:
        result = data.get(field) or {}
        if "errorCode" in result:
            raise VendureRejected(str(result.get("message")), str(result["errorCode"]))
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
        return str(self._result(self._call(ADD_FULFILLMENT, variables), "addFulfillmentToOrder")["id"])

    def transition_fulfillment(self, *, fulfillment_id: str, state: str) -> None:
        self._result(self._call(TRANSITION_FULFILLMENT, {"id": fulfillment_id, "state": state}), "transitionFulfillmentToState")

    def fulfillment_with_tracking_code(self, *, order_id: str, tracking_code: str) -> dict[str, Any] | None:
        order = self._call(ORDER_FULFILLMENTS, {"id": order_id}).get("order") or {}
        for fulfillment in order.get("fulfillments") or []:
            if fulfillment.get("trackingCode") == tracking_code:
                return fulfillment
        return None
