"""The arrival an order's customer is shown now, and what it is made with."""

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from dispatch.models import Driver, Order
from eta.estimate import Estimate, Travel, default_travel, estimate_arrival
from eta.models import TravelProfile

S = Order.Status


# (zone, vehicle) -> (read at, travel). Per process, and only for DISPATCH_ETA_PROFILE_CACHE_S:
# profiles change when the hourly sweep learns them, and what they decide is the window a
# customer is shown, nothing of dispatch; every assignment, accept, pickup and kept position
# would otherwise read them again.
_travel_read: dict[tuple[int | None, str], tuple[float, Travel]] = {}


def travel_for(zone_id: int | None, vehicle: str) -> Travel:
    """The zone's learned travel for this vehicle kind, else every zone's, else the default."""
    key = (zone_id, vehicle)
    read = _travel_read.get(key)
    if read is not None and time.monotonic() - read[0] < settings.DISPATCH_ETA_PROFILE_CACHE_S:
        return read[1]
    profiles = {p.zone_id: p for p in TravelProfile.objects.filter(Q(zone_id=zone_id) | Q(zone__isnull=True), vehicle=vehicle)}
    profile = profiles.get(zone_id) or profiles.get(None)
    travel = (
        default_travel(vehicle)
        if profile is None
        else Travel(speed_mps=profile.speed_mps, error_p10_s=profile.error_p10_s, error_p90_s=profile.error_p90_s, sample_count=profile.sample_count)
    )
    _travel_read[key] = (time.monotonic(), travel)
    return travel


def travel_forget() -> None:
    """Read the profiles again at the next estimate (in this process): after the sweep wrote them, and in tests."""
    _travel_read.clear()


def order_estimate(order: Order, driver: Driver | None, now: datetime, travel: Travel | None = None) -> Estimate | None:
    """When the order should arrive, as its customer is shown it: only while a driver holds it
    and the drop-off has coordinates. From where the driver is when their position is fresh;
    else, once picked up, from the pickup at the moment it was collected."""
    if order.status not in (S.ASSIGNED, S.PICKED_UP) or driver is None or order.dropoff_lat is None or order.dropoff_lon is None:
        return None
    travel = travel or travel_for(order.zone_id, driver.vehicle)
    pickup = (order.pickup_lat, order.pickup_lon)
    dropoff = (order.dropoff_lat, order.dropoff_lon)
    is_fresh = (
        driver.last_lat is not None
        and driver.last_lon is not None
        and driver.last_position_at is not None
        and now - driver.last_position_at <= timedelta(seconds=settings.DISPATCH_TRACKING_POSITION_STALE_S)
    )
    via_pickup = pickup if order.status == S.ASSIGNED else None
    if is_fresh:
        assert driver.last_lat is not None and driver.last_lon is not None
        return estimate_arrival(travel=travel, origin=(driver.last_lat, driver.last_lon), leaves_at=now, via_pickup=via_pickup, dropoff=dropoff, now=now)
    leaves_at = order.picked_up_at if order.status == S.PICKED_UP and order.picked_up_at else now
    return estimate_arrival(travel=travel, origin=pickup, leaves_at=leaves_at, via_pickup=via_pickup, dropoff=dropoff, now=now)
