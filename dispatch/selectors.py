"""Reads shared by the webhook, the API, the sweeps and admin."""

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from dispatch.geometry import area_json_contains, distance_m
from dispatch.models import Driver, Order, Zone


def zone_for_point(lat: float, lon: float) -> Zone | None:
    """The active zone whose area covers the point; the first by name when areas overlap.

    The areas are read as JSON text (the database's canonical form) and never decoded here:
    a zone's prepared geometry is cached by that text, so a known area costs an order a
    lookup, not a decode of up to ZONE_AREA_MAX_VERTICES vertices.
    """
    zones = Zone.objects.filter(is_active=True, area__isnull=False).defer("area").annotate(area_json=Cast("area", output_field=TextField()))
    for zone in zones:
        if area_json_contains(zone.area_json, lat, lon):
            return zone
    return None


def zone_for_postal_code(postal_code: str) -> Zone | None:
    """The active zone with the longest postal-code prefix matching the code."""
    if not postal_code.strip():
        return None
    best: tuple[int, Zone] | None = None
    for zone in Zone.objects.filter(is_active=True).exclude(postal_code_prefixes=[]):
        length = zone.postal_match_length(postal_code)
        if length and (best is None or length > best[0]):
            best = (length, zone)
    return best[1] if best else None


def zone_for_dropoff(lat: float | None, lon: float | None, postal_code: str) -> Zone | None:
    """Coordinates decide when the shop sent them; the postal code otherwise."""
    if lat is not None and lon is not None:
        zone = zone_for_point(lat, lon)
        if zone is not None:
            return zone
    return zone_for_postal_code(postal_code)


def candidate_drivers(
    zone: Zone,
    pickup_lat: float,
    pickup_lon: float,
    now: datetime | None = None,
    exclude: Iterable[Collection[int] | QuerySet[Any]] = (),
    limit: int | None = None,
) -> list[Driver]:
    """Available drivers of the zone with free capacity and an active user account, best first.

    A deactivated driver (user.is_active off) is never a candidate, whatever their availability
    says: neither offered an order (v2) nor assigned one (v1).

    Ranking: drivers with a recent position (younger than DISPATCH_POSITION_MAX_AGE_S) by
    distance to the pickup, nearest first; then drivers without one, idle longest first
    (oldest `idle_since`). Ties break on the driver id, so the order is deterministic.
    """
    now = now or timezone.now()
    fresh_after = now - timedelta(seconds=settings.DISPATCH_POSITION_MAX_AGE_S)
    candidates = Driver.objects.filter(zones=zone, availability=Driver.Availability.AVAILABLE, active_order_count__lt=F("capacity"), user__is_active=True)
    for excluded_ids in exclude:  # ids or subqueries of ids: excluded in the database
        candidates = candidates.exclude(pk__in=excluded_ids)
    drivers = list(
        candidates.only("pk", "name", "idle_since", "last_lat", "last_lon", "last_position_at", "app_version", "v2_connected_at").order_by(
            F("idle_since").asc(nulls_first=True), "pk"
        )
    )

    def rank(driver: Driver) -> tuple[int, float, int]:
        has_fresh_position = (
            driver.last_lat is not None and driver.last_lon is not None and driver.last_position_at is not None and driver.last_position_at >= fresh_after
        )
        if has_fresh_position:
            return (0, distance_m(pickup_lat, pickup_lon, driver.last_lat, driver.last_lon), 0)  # type: ignore[arg-type]
        return (1, 0.0, 0)

    # sorted() is stable, so drivers without a position keep the idle-longest order.
    return sorted(drivers, key=rank)[:limit]


def orders_waiting_for_driver() -> QuerySet[Order]:
    """Orders waiting for a driver, oldest first: what the assignment sweep works through."""
    return Order.objects.filter(status__in=Order.WAITING_STATUSES).exclude(offers__state="pending").order_by("received_at", "pk")


def driver_current_orders(driver: Driver) -> QuerySet[Order]:
    return Order.objects.filter(driver=driver, status__in=Order.ACTIVE_STATUSES).select_related("channel", "zone").order_by("assigned_at", "pk")
