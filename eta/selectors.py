"""The arrival an order's customer is shown now, and what it is made with."""

import math
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from dispatch.models import Driver, Order
from eta.estimate import Estimate, Travel, default_travel, estimate_arrival
from eta.models import OrderEta, TravelProfile
from eta.routing import route

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


def order_estimate(order: Order, driver: Driver | None, now: datetime, travel: Travel | None = None, *, use_routing: bool = False) -> Estimate | None:
    """When the order should arrive, as its customer is shown it: only while a driver holds it
    and the drop-off has coordinates. From where the driver is when their position is fresh;
    else from the pickup (when it was collected, once picked up). With `use_routing` (never
    inside a transaction) the routing engine's driving time, when it answers in time."""
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
        origin, leaves_at = (driver.last_lat, driver.last_lon), now
    else:
        origin, leaves_at = pickup, order.picked_up_at if order.status == S.PICKED_UP and order.picked_up_at else now
    routed_s = None
    if use_routing:
        found = route(driver.vehicle, [origin, *([via_pickup] if via_pickup else []), dropoff])
        routed_s = found.duration_s if found is not None else None
    return estimate_arrival(travel=travel, origin=origin, leaves_at=leaves_at, via_pickup=via_pickup, dropoff=dropoff, now=now, routed_s=routed_s)


def kept_arrival(order: Order, vehicle: str) -> Estimate | None:
    """The estimate kept when the order was assigned (eta.OrderEta), as shown to its customer
    until pickup: a live one would tell them, poll after poll, where the driver is before they
    collect this order (perhaps still on someone else's delivery)."""
    kept = OrderEta.objects.filter(order_id=order.pk).first()
    if kept is None or kept.at_assignment is None or kept.at_assignment_earliest is None or kept.at_assignment_latest is None:
        return None
    travel = travel_for(order.zone_id, vehicle)
    return Estimate(
        arrive_at=kept.at_assignment,
        earliest=kept.at_assignment_earliest,
        latest=kept.at_assignment_latest,
        is_learned=travel.is_learned,
        sample_count=travel.sample_count,
        source=kept.source,
    )


# --- Accuracy: what was shown against what happened ------------------------------------------------

STAGES = {"pickup": ("at_pickup", "at_pickup_earliest", "at_pickup_latest"), "assignment": ("at_assignment", "at_assignment_earliest", "at_assignment_latest")}


@dataclass(frozen=True)
class Accuracy:
    """How right the estimates shown at one stage were, for one zone, vehicle kind, source and week."""

    zone: str
    vehicle: str
    source: str
    week: str  # ISO year and week, e.g. 2026-W48
    count: int
    mean_abs_error_s: float
    p90_abs_error_s: float
    bias_s: float  # mean of (arrival − estimate): positive is late
    inside_window: float  # share that arrived within the window shown


def estimate_accuracy(*, stage: str, since: datetime) -> list[Accuracy]:
    """Per zone, vehicle kind, source (built in or a routing engine) and week, newest first: the
    mean and 90th percentile of the absolute error, the bias, and the share inside the window,
    of the estimates shown at `stage` ("pickup" or "assignment") of orders that arrived since."""
    shown, earliest, latest = STAGES[stage]
    rows = (
        OrderEta.objects.filter(arrived_at__gte=since, **{f"{shown}__isnull": False})
        .values_list("zone__name", "vehicle", "source", "arrived_at", shown, earliest, latest)
        .iterator(chunk_size=5000)
    )
    groups: dict[tuple[str, str, str, str], list[tuple[float, bool]]] = {}
    for zone_name, vehicle, source, arrived_at, estimate, window_start, window_end in rows:
        year, week, _ = arrived_at.isocalendar()
        error_s = (arrived_at - estimate).total_seconds()
        inside = window_start is not None and window_end is not None and window_start <= arrived_at <= window_end
        groups.setdefault((zone_name or "no zone", vehicle, source, f"{year}-W{week:02d}"), []).append((error_s, inside))
    found = []
    for (zone_name, vehicle, source, week), samples in groups.items():
        errors = [error for error, _ in samples]
        absolute = sorted(abs(error) for error in errors)
        found.append(
            Accuracy(
                zone=zone_name,
                vehicle=vehicle,
                source=source,
                week=week,
                count=len(samples),
                mean_abs_error_s=statistics.fmean(absolute),
                p90_abs_error_s=absolute[min(len(absolute) - 1, math.ceil(0.9 * len(absolute)) - 1)],
                bias_s=statistics.fmean(errors),
                inside_window=sum(1 for _, inside in samples if inside) / len(samples),
            )
        )
    return sorted(found, key=lambda a: (a.week, a.zone, a.vehicle, a.source), reverse=True)
