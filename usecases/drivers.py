"""A driver's availability changes, with what follows for their offers and orders."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.actors import SYSTEM, Actor
from availability import selectors as availability_selectors
from availability import services as availability
from availability.services import AvailabilityChange
from dispatch import selectors as dispatch_selectors
from dispatch.after_commit import after_commit
from dispatch.clock import database_now
from dispatch.errors import IllegalTransition
from dispatch.models import Driver, Reassignment
from eta import selectors as eta_selectors
from offers import selectors as offer_selectors
from offers.frames import offer_frame, order_update_frame
from rollout.models import Feature
from rollout.selectors import feature_enabled_for, switch_is_on
from tracking import notify as tracking_notify

A = Driver.Availability


def _availability_changed(change: AvailabilityChange, *, cause: str = "") -> None:
    """After commit: a driver who can take work is tried for waiting orders; one who cannot
    any more has their pending offer withdrawn (its order moves on) and, gone offline, loses
    the orders they have not picked up. Each is also a sweep's job (assignment, expiry,
    reassignment), so a lost message delays it and never loses it."""
    if not change.changed:
        return
    driver_id = change.driver.pk
    if change.driver.availability == A.AVAILABLE:
        after_commit(lambda: _waiting_orders_try_soon(driver_id))
        return
    after_commit(lambda: _pending_offers_withdraw(driver_id))
    if change.driver.availability == A.OFFLINE:
        why = Reassignment.Reason.DRIVER_SILENT if cause == "silent" else Reassignment.Reason.DRIVER_OFFLINE
        after_commit(lambda: _orders_reassign_soon(driver_id, why))


def _waiting_orders_try_soon(driver_id: int) -> None:
    from usecases.tasks import assign_orders_for_driver

    assign_orders_for_driver.delay(driver_id)


def _pending_offers_withdraw(driver_id: int) -> None:
    from usecases.offers import driver_offers_withdraw

    driver_offers_withdraw(driver_id=driver_id)


def _orders_reassign_soon(driver_id: int, reason: str) -> None:
    from usecases.tasks import reassign_driver_orders

    reassign_driver_orders.delay(driver_id, reason)


def driver_go_online(*, driver_id: int, actor: Actor, now: datetime | None = None) -> Driver:
    with transaction.atomic(durable=True):
        change = availability.driver_go_online(driver_id=driver_id, actor=actor, now=now or timezone.now())
        _availability_changed(change)
    return change.driver


def _driver_go_offline_locked(*, driver_id: int, actor: Actor, now: datetime, reason: str) -> Driver:
    change = availability.driver_go_offline(driver_id=driver_id, actor=actor, now=now, reason=reason)
    _availability_changed(change, cause=reason)
    return change.driver


def driver_go_offline(*, driver_id: int, actor: Actor, now: datetime | None = None, reason: str = "") -> Driver:
    """A driver going offline keeps the orders they hold until the reassignment rules act."""
    with transaction.atomic(durable=True):
        return _driver_go_offline_locked(driver_id=driver_id, actor=actor, now=now or timezone.now(), reason=reason)


def break_start(*, driver_id: int, minutes: int, actor: Actor, now: datetime | None = None) -> Driver:
    with transaction.atomic(durable=True):
        change = availability.break_start(driver_id=driver_id, minutes=minutes, actor=actor, now=now or timezone.now())
        _availability_changed(change)
    return change.driver


def break_end(*, driver_id: int, actor: Actor, now: datetime | None = None, reason: str = "") -> Driver:
    with transaction.atomic(durable=True):
        change = availability.break_end(driver_id=driver_id, actor=actor, now=now or timezone.now(), reason=reason)
        _availability_changed(change)
    return change.driver


def end_breaks_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """The break sweep: breaks past their end time end now (by the database's clock)."""
    now = now or database_now()
    ended = 0
    for driver_id in list(availability_selectors.breaks_over(now).values_list("pk", flat=True)[:limit]):
        try:
            break_end(driver_id=driver_id, actor=SYSTEM, reason="break_over", now=now)
            ended += 1
        except IllegalTransition:
            continue  # the driver ended it or went offline meanwhile
    return ended


def breaks_end_all(*, reason: str, now: datetime | None = None) -> int:
    """v2 availability was switched off: v1 knows no breaks, so every break ends now.

    A task that runs late, after ops turned v2 availability back on, ends no break."""
    ended = 0
    for driver_id in list(Driver.objects.filter(availability=A.ON_BREAK).values_list("pk", flat=True)):
        if switch_is_on(Feature.AVAILABILITY):
            return ended
        try:
            break_end(driver_id=driver_id, actor=SYSTEM, reason=reason, now=now)
            ended += 1
        except IllegalTransition:
            continue
    return ended


def breaks_switched_off_due(*, now: datetime | None = None) -> int:
    """Sweep: while v2 availability is switched off, nobody stays on a break. The task
    enqueued when the switch was turned off is only the fast path; if it was lost, the next
    tick of the break sweep ends the breaks."""
    if switch_is_on(Feature.AVAILABILITY) or not Driver.objects.filter(availability=A.ON_BREAK).exists():
        return 0
    return breaks_end_all(reason="switched_off", now=now)


def offline_silent_drivers_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """The silence sweep: drivers on v2 availability who stopped sending heartbeats go offline,
    and so does any deactivated driver still marked online (however they were deactivated).

    Drivers of the v1 app never send heartbeats, so only drivers for whom the feature is on
    are judged by silence.
    """
    now = now or database_now()
    went_offline = 0
    for driver in list(availability_selectors.silent_drivers(now)[:limit]):
        if not feature_enabled_for(Feature.AVAILABILITY, driver):
            continue
        try:
            driver_go_offline(driver_id=driver.pk, actor=SYSTEM, reason="silent", now=now)
            went_offline += 1
        except IllegalTransition:
            continue
    for driver_id in list(availability_selectors.deactivated_not_offline().values_list("pk", flat=True)[:limit]):
        try:
            driver_go_offline(driver_id=driver_id, actor=SYSTEM, reason="deactivated", now=now)
            went_offline += 1
        except IllegalTransition:
            continue
    return went_offline


def driver_deactivated(*, user_id: int, now: datetime | None = None) -> None:
    """A driver's account was deactivated, in the caller's transaction (the admin's change
    form): offline with it, so their pending offer is withdrawn and moves on, and their open
    sockets are asked to check their credentials after commit. Orders they already hold stay
    theirs: they may carry the goods, and going offline is what the reassignment rules act
    on, exactly as for a driver who went home."""
    driver_id = availability_selectors.deactivated_not_offline().filter(user_id=user_id).values_list("pk", flat=True).first()
    if driver_id is not None:
        _driver_go_offline_locked(driver_id=driver_id, actor=SYSTEM, reason="deactivated", now=now or timezone.now())
    after_commit(lambda: _sockets_check_credentials(user_id))  # after the withdrawal: the app hears of it first


def _sockets_check_credentials(user_id: int) -> None:
    from offers.notify import driver_credentials_changed_send

    driver_credentials_changed_send(user_id=user_id)


@dataclass(frozen=True)
class SocketOpened:
    """What an authenticated socket needs back: the sockets of the same driver it pushed out,
    and the frames the driver must get again (pending offer, active orders)."""

    evicted_channel_names: list[str]
    frames: list[dict[str, Any]]


def driver_socket_open(*, driver_id: int, channel_name: str, app_version: str = "", now: datetime | None = None) -> SocketOpened:
    """An authenticated socket joined: its presence recorded (availability), then the driver's
    state read again for it (offers): a frame lost while the app was away costs nothing."""
    evicted = availability.driver_socket_connect(driver_id=driver_id, channel_name=channel_name, app_version=app_version, now=now)
    frames = [offer_frame(offer) for offer in offer_selectors.driver_pending_offers(driver_id)]
    frames += [order_update_frame(order) for order in offer_selectors.driver_active_orders(driver_id)]
    return SocketOpened(evicted_channel_names=evicted, frames=frames)


def driver_position_report(*, driver_id: int, lat: float, lon: float, at: datetime | None = None, accuracy_m: float | None = None) -> None:
    """A driver's position, from their socket or the API: stored, and shown with the arrival it
    leads to on the tracking pages of the orders they carry (picked up, not ended), never on
    any other; at most once a DISPATCH_POSITION_MIN_INTERVAL_S, like the history."""
    taken = availability.driver_position_update(driver_id=driver_id, lat=lat, lon=lon, at=at, accuracy_m=accuracy_m)
    if taken is None or not taken.is_kept:
        return  # older than the position held, or coalesced into it
    carried = dispatch_selectors.orders_carried_by(driver_id)
    if not carried:
        return
    driver = Driver.objects.get(pk=driver_id)
    now = timezone.now()
    # Built in, never the routing engine: a driver's socket waits for this on a shared thread.
    arrivals = {order.pk: eta_selectors.order_estimate(order, driver, now) for order in carried}
    tracking_notify.driver_position_send(arrivals=arrivals, driver_id=driver_id, lat=lat, lon=lon, at=taken.recorded_at)
