"""What each order's customer was shown, kept in the move's transaction; and the travel
profiles learned from the zone's deliveries by a sweep."""

import statistics
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from dispatch.after_commit import after_commit
from dispatch.models import Driver, Order
from dispatch.rows import row_upsert, rows_read
from eta.estimate import road_m
from eta.models import OrderEta, TravelProfile
from eta.routing import routing_url
from eta.selectors import order_estimate, travel_forget

S = Order.Status
_STAGE_FIELDS = {
    S.ASSIGNED: ("at_assignment", "at_assignment_earliest", "at_assignment_latest"),
    S.PICKED_UP: ("at_pickup", "at_pickup_earliest", "at_pickup_latest"),
}


def order_eta_record(*, order: Order, now: datetime, driver: Driver | None = None) -> None:
    """In the transaction of a move to assigned or picked up: the estimate the customer is
    shown from this moment, kept with the order: one statement (an upsert in SQL text) when the
    move hands over the driver's row as it took their capacity, two otherwise. At delivery,
    the arrival."""
    if order.status == S.DELIVERED:
        OrderEta.objects.filter(order_id=order.pk).update(arrived_at=now)
        return
    fields = _STAGE_FIELDS.get(order.status)  # type: ignore[call-overload]
    if fields is None or order.driver_id is None or order.dropoff_lat is None or order.dropoff_lon is None:
        return
    if driver is None or driver.pk != order.driver_id:
        driver = next(iter(rows_read(Driver, id=order.driver_id)), None)
    estimate = order_estimate(order, driver, now)
    if estimate is None or driver is None:
        return
    values = dict(zip(fields, (estimate.arrive_at, estimate.earliest, estimate.latest), strict=True))
    if order.status == S.PICKED_UP:
        values.update(picked_up_at=now, pickup_to_dropoff_m=road_m((order.pickup_lat, order.pickup_lon), (order.dropoff_lat, order.dropoff_lon)))
    kept = OrderEta(order_id=order.pk, zone_id=order.zone_id, vehicle=driver.vehicle, source=OrderEta.Source.BUILT_IN, **values)
    row_upsert(kept, unique_fields=["order"], update_fields=["zone", "vehicle", "source", *values])
    if routing_url(driver.vehicle):
        # The engine is asked by a worker once the move committed: never while the move's locks
        # are held, nor on a driver socket's database thread, which other sockets wait for.
        order_id, stage_fields, built_in_at = order.pk, list(fields), estimate.arrive_at.isoformat()
        after_commit(lambda: _estimate_refine_soon(order_id, stage_fields, built_in_at, now.isoformat()))


def _estimate_refine_soon(order_id: int, fields: list[str], built_in_at: str, now: str) -> None:
    from eta.tasks import estimate_refine  # the task calls this module

    estimate_refine.delay(order_id, fields, built_in_at, now)


def estimate_refine_with_routing(order_id: int, fields: tuple[str, str, str], built_in_at: datetime, now: datetime) -> None:
    """Replace a kept built-in estimate by the routing engine's, when it answers in time and
    nothing kept a newer estimate of that stage meanwhile."""
    order = Order.objects.select_related("driver").filter(pk=order_id).first()
    if order is None:
        return
    estimate = order_estimate(order, order.driver, now, use_routing=True)
    if estimate is None or estimate.source != OrderEta.Source.ROUTING:
        return  # the engine did not answer in time: the built-in estimate stays, as shown
    values = dict(zip(fields, (estimate.arrive_at, estimate.earliest, estimate.latest), strict=True))
    OrderEta.objects.filter(order_id=order_id, **{fields[0]: built_in_at}).update(source=OrderEta.Source.ROUTING, **values)


def travel_profiles_refresh_due(*, now: datetime) -> int:
    """Learn each zone's travel per vehicle kind from its deliveries of the last
    DISPATCH_ETA_LEARN_DAYS: the median speed from pickup to drop-off (handling taken out), and
    the 10th and 90th percentiles of (arrival − the estimate shown at pickup). A zone and
    vehicle with fewer than DISPATCH_ETA_MIN_SAMPLES deliveries keeps the default. Returns how
    many profiles were written."""
    since = now - timedelta(days=settings.DISPATCH_ETA_LEARN_DAYS)
    samples: dict[tuple[int | None, str], list[tuple[float, float]]] = {}  # by (zone, or None for every zone; vehicle)
    rows = OrderEta.objects.filter(arrived_at__gte=since, picked_up_at__isnull=False, at_pickup__isnull=False, pickup_to_dropoff_m__gt=0)
    for zone_id, vehicle, picked_up_at, arrived_at, at_pickup, metres in rows.values_list(
        "zone_id", "vehicle", "picked_up_at", "arrived_at", "at_pickup", "pickup_to_dropoff_m"
    ).iterator(chunk_size=5000):
        if arrived_at is None or picked_up_at is None or at_pickup is None or metres is None:
            continue  # the filter leaves none; the types do not know it
        moving_s = (arrived_at - picked_up_at).total_seconds() - settings.DISPATCH_ETA_DROPOFF_HANDLING_S
        if moving_s <= 0:
            continue
        sample = (metres / moving_s, (arrived_at - at_pickup).total_seconds())
        if zone_id is not None:
            samples.setdefault((zone_id, vehicle), []).append(sample)
        samples.setdefault((None, vehicle), []).append(sample)  # every zone's, for zones with too few
    written = 0
    with transaction.atomic():
        for (profile_zone_id, vehicle), pairs in samples.items():
            if len(pairs) < settings.DISPATCH_ETA_MIN_SAMPLES:
                continue
            speeds, errors = [speed for speed, _ in pairs], sorted(error for _, error in pairs)
            deciles = statistics.quantiles(errors, n=10)
            zone_lookup: dict[str, Any] = {"zone__isnull": True} if profile_zone_id is None else {"zone_id": profile_zone_id}
            TravelProfile.objects.update_or_create(
                **zone_lookup,
                vehicle=vehicle,
                defaults={
                    "zone_id": profile_zone_id,
                    "speed_mps": statistics.median(speeds),
                    "error_p10_s": deciles[0],
                    "error_p90_s": deciles[-1],
                    "sample_count": len(pairs),
                    "refreshed_at": now,
                },
            )
            written += 1
    travel_forget()
    return written
