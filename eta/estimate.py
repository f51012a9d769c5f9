"""The built-in arrival estimate: it needs nothing but coordinates.

Distance along the road is the straight line times a detour factor; time is that over the
vehicle's speed in the zone (learned: `TravelProfile`; else the default for the vehicle), plus
handling at the pickup (when the order is still to be collected) and at the drop-off. The
window around it is the 10th to 90th percentile of the zone's past errors for that vehicle,
or a default spread before there are enough deliveries to know, and the page says which.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from dispatch.geometry import distance_m

Point = tuple[float, float]


@dataclass(frozen=True)
class Travel:
    """What an estimate is made with, for one zone and vehicle kind."""

    speed_mps: float
    error_p10_s: float | None = None  # None: not enough deliveries yet, the default spread holds
    error_p90_s: float | None = None
    sample_count: int = 0

    @property
    def is_learned(self) -> bool:
        return self.error_p10_s is not None and self.error_p90_s is not None and self.sample_count >= settings.DISPATCH_ETA_MIN_SAMPLES


@dataclass(frozen=True)
class Estimate:
    arrive_at: datetime
    earliest: datetime
    latest: datetime
    is_learned: bool  # the window comes from the zone's own deliveries
    sample_count: int
    source: str = "built_in"  # or "routing": the routing engine's driving time

    @property
    def confidence_words(self) -> str:
        if self.is_learned:
            return f"8 in 10 of the last {self.sample_count} deliveries like this one arrived within their window"
        return "A first estimate: too few deliveries here yet to say how sure it is"

    def as_public(self) -> dict[str, object]:
        return {"earliest": self.earliest, "latest": self.latest, "confidence_words": self.confidence_words, "is_learned": self.is_learned}


def road_m(origin: Point, destination: Point) -> float:
    """The distance along the road, estimated: the straight line times the detour factor."""
    return distance_m(*origin, *destination) * settings.DISPATCH_ETA_DETOUR_FACTOR


def default_travel(vehicle: str) -> Travel:
    speeds = settings.DISPATCH_ETA_SPEED_MPS
    return Travel(speed_mps=speeds.get(vehicle, speeds["bicycle"]))


def estimate_arrival(
    *, travel: Travel, origin: Point, leaves_at: datetime, via_pickup: Point | None, dropoff: Point, now: datetime, routed_s: float | None = None
) -> Estimate:
    """When the order reaches `dropoff`, leaving `origin` at `leaves_at` (where the driver is
    now; or the pickup when the order was collected and the driver's position is unknown),
    through `via_pickup` when the order is still to be collected. `routed_s`: the routing
    engine's driving time along that way, which replaces the built-in distance over speed."""
    metres, handling_s = 0.0, settings.DISPATCH_ETA_DROPOFF_HANDLING_S
    if via_pickup is not None:
        metres += road_m(origin, via_pickup)
        handling_s += settings.DISPATCH_ETA_PICKUP_HANDLING_S
        origin = via_pickup
    metres += road_m(origin, dropoff)
    travel_s = (routed_s if routed_s is not None else metres / max(travel.speed_mps, 0.5)) + handling_s
    arrive_at = max(now, leaves_at + timedelta(seconds=travel_s))
    if travel.is_learned:
        assert travel.error_p10_s is not None and travel.error_p90_s is not None
        early_s, late_s = travel.error_p10_s, travel.error_p90_s
    else:
        spread_s = settings.DISPATCH_ETA_DEFAULT_SPREAD_S + settings.DISPATCH_ETA_DEFAULT_SPREAD_SHARE * travel_s
        early_s, late_s = -spread_s / 2, spread_s / 2
    # Never a window that ends before now, nor one narrower than a person can plan around.
    earliest = max(now, arrive_at + timedelta(seconds=min(early_s, 0.0)))
    latest = max(arrive_at + timedelta(seconds=max(late_s, 0.0)), earliest + timedelta(seconds=settings.DISPATCH_ETA_MIN_WINDOW_S))
    return Estimate(
        arrive_at=arrive_at,
        earliest=earliest,
        latest=latest,
        is_learned=travel.is_learned,
        sample_count=travel.sample_count,
        source="routing" if routed_s is not None else "built_in",
    )
