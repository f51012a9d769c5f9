"""Webhook bodies shaped exactly like a Vendure shop plugin sends them.

Used by the demo data, the simulator, the benchmark and the tests, so all of them speak the
same contract as docs/vendure.md.
"""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from vendure.signing import sign


def order_payload(
    *,
    vendure_order_id: str,
    code: str,
    lat: float | None = 52.52,
    lon: float | None = 13.405,
    postal_code: str | None = "10115",
    fee_minor: int = 499,
    currency: str = "EUR",
    customer: tuple[str, str] = ("Ada", "Lovelace"),
    items: tuple[tuple[str, int], ...] = (("Espresso beans 1 kg", 1),),
) -> dict[str, Any]:
    subtotal = 2500 * sum(q for _, q in items)
    return {
        "id": vendure_order_id,
        "code": code,
        "state": "PaymentSettled",
        "orderPlacedAt": datetime.now(UTC).isoformat(),
        "currencyCode": currency,
        "subTotal": subtotal,
        "subTotalWithTax": round(subtotal * 1.19),
        "shipping": round(fee_minor / 1.19),
        "shippingWithTax": fee_minor,
        "total": subtotal + round(fee_minor / 1.19),
        "totalWithTax": round(subtotal * 1.19) + fee_minor,
        "customer": {"firstName": customer[0], "lastName": customer[1], "emailAddress": f"{customer[0].lower()}@example.com", "phoneNumber": None},
        "shippingAddress": {
            "fullName": " ".join(customer),
            "company": None,
            "streetLine1": "Invalidenstraße 1",
            "streetLine2": None,
            "city": "Berlin",
            "province": None,
            "postalCode": postal_code,
            "country": "Germany",
            "countryCode": "DE",
            "phoneNumber": "+49 30 1234567",
            "customFields": {"latitude": lat, "longitude": lon},
        },
        "lines": [
            {"id": f"{vendure_order_id}-{n}", "quantity": quantity, "productVariant": {"id": str(100 + n), "name": name, "sku": f"SKU-{100 + n}"}}
            for n, (name, quantity) in enumerate(items, start=1)
        ],
        "customFields": {},
    }


def event(event_type: str, order: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or uuid.uuid4().hex, "type": event_type, "createdAt": datetime.now(UTC).isoformat(), "order": order}


def cancelled_order(order: dict[str, Any]) -> dict[str, Any]:
    """What Vendure sends on cancellation: the same order with every quantity and total at 0."""
    zeroed = {**order, "state": "Cancelled", "subTotal": 0, "subTotalWithTax": 0, "total": 0, "totalWithTax": 0, "shipping": 0, "shippingWithTax": 0}
    zeroed["lines"] = [{**line, "quantity": 0} for line in order.get("lines", [])]
    return zeroed


def signed_request(channel_token: str, secret: str, body: dict[str, Any] | bytes, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """(raw body, headers) for POST /webhooks/vendure/."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, {
        "Content-Type": "application/json",
        "X-Dispatch-Channel": channel_token,
        "X-Dispatch-Signature": sign(secret, raw, timestamp),
    }
