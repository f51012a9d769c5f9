"""Offer lifecycle: made, accepted, declined, expired, withdrawn.

Every answer takes the order's row lock before anything else, so everything that happens to
one order (answers, expiry, cancellation, assignment) is serialised on that row and no two
transactions wait on each other in opposite orders. The offer then moves by compare-and-set:
of racing accepts exactly one moves its offer and assigns the order; the others find their
offer withdrawn as taken. Expiry is a deadline column and a sweep, compared with the
database's clock.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from audit.actors import SYSTEM, Actor
from audit.services import audit_record
from dispatch import services as dispatch_services
from dispatch.errors import NotFound
from dispatch.geometry import distance_m
from dispatch.models import Driver, Order
from observability import metrics
from offers.errors import OfferAlreadyAnswered, OfferExpired, OfferTaken, OfferWithdrawn
from offers.models import DriverSocket, Offer
from rollout.models import Feature
from rollout.selectors import feature_enabled_for

logger = logging.getLogger(__name__)
P = Offer.State.PENDING


def offer_decider() -> Callable[[Driver], bool]:
    """Whether each candidate of one dispatch decision gets an offer (v2) or an assignment
    (v1): the switch and the share are read once for the whole decision, and the switch's row
    is held until the decision commits (see `switch_is_on`)."""
    from rollout.selectors import rollout_percentage, switch_is_on

    if not switch_is_on(Feature.OFFERS, hold_until_commit=True):
        return lambda driver: False
    percentage = rollout_percentage(Feature.OFFERS)
    return lambda driver: feature_enabled_for(Feature.OFFERS, driver, percentage=percentage, switch_checked=True)


def order_has_pending_offer(order_id: int) -> bool:
    return Offer.objects.filter(order_id=order_id, state=P).exists()


def drivers_not_to_offer(order_id: int) -> QuerySet[Offer, Any]:
    """Drivers who declined or let this order's offer lapse, and drivers busy with another offer.

    A subquery, not a list: the candidate query excludes them in the database, without
    reading every pending offer of the system into memory at each decision."""
    return Offer.objects.filter(Q(order_id=order_id, state__in=[Offer.State.DECLINED, Offer.State.EXPIRED]) | Q(state=P)).values("driver_id")


def _offer_audit(offer: Offer, kind: str, *, actor: Actor, before: str | None, after: str, **data: Any) -> None:
    audit_record(
        kind,
        actor=actor,
        subject_type="offer",
        subject_id=offer.pk,
        order_id=offer.order_id,
        order_code=offer.order.code,
        driver_id=offer.driver_id,
        zone_id=offer.order.zone_id,
        before={"state": before} if before else None,
        after={"state": after},
        data=data,
    )


def _after_commit(callback: Any) -> None:
    transaction.on_commit(callback, robust=True)


def offer_make(*, order: Order, driver: Driver, now: datetime) -> Offer | None:
    """Put the order to the driver until the zone's time limit; None if they got another offer first."""
    timeout_s = order.zone.offer_timeout_s if order.zone else 30
    distance = None
    if driver.last_lat is not None and driver.last_lon is not None:
        distance = round(distance_m(driver.last_lat, driver.last_lon, order.pickup_lat, order.pickup_lon))
    try:
        with transaction.atomic():
            offer = Offer.objects.create(
                order=order, driver=driver, state=P, created_at=now, expires_at=now + timedelta(seconds=timeout_s), distance_m=distance
            )
    except IntegrityError:
        return None  # the partial unique index: this driver already holds a pending offer
    offer.order = order
    _offer_audit(offer, "offer.made", actor=SYSTEM, before=None, after=P, expires_at=offer.expires_at.isoformat(), timeout_s=timeout_s)
    metrics.offer_event(order.zone_id, "sent")
    _after_commit(lambda: _notify("offer", offer.pk))
    return offer


def _lock_order(order_id: int) -> None:
    Order.objects.select_for_update().filter(pk=order_id).values_list("pk", flat=True).first()


def _refusal(offer: Offer, now: datetime) -> Exception:
    if (offer.state == P and offer.expires_at <= now) or offer.state == Offer.State.EXPIRED:
        return OfferExpired(f"offer {offer.pk} expired at {offer.expires_at.isoformat()}", offer=offer.pk)
    if offer.state == Offer.State.WITHDRAWN and offer.withdrawn_reason == Offer.WithdrawnReason.TAKEN:
        return OfferTaken(f"order {offer.order_id} was taken by another driver", offer=offer.pk)
    if offer.state == Offer.State.TAKEN_BACK:
        return OfferWithdrawn(f"order {offer.order_id} was taken back from you after you accepted it", offer=offer.pk, reason=Offer.State.TAKEN_BACK)
    if offer.state == Offer.State.WITHDRAWN:
        return OfferWithdrawn(f"offer {offer.pk} was withdrawn: {offer.get_withdrawn_reason_display()}", offer=offer.pk, reason=offer.withdrawn_reason)
    return OfferAlreadyAnswered(f"offer {offer.pk} was already {offer.state}", offer=offer.pk, state=offer.state)


def _own_offer_order_id(offer_id: int, driver: Driver) -> int:
    order_id = Offer.objects.filter(pk=offer_id, driver=driver).values_list("order_id", flat=True).first()
    if order_id is None:
        raise NotFound(f"offer {offer_id} not found")  # someone else's offer does not exist for you
    return order_id


def _answered_already(offer_id: int) -> Offer | None:
    """An offer no longer pending, read without locking: the losers of a race leave at once."""
    offer = Offer.objects.select_related("order").get(pk=offer_id)
    return None if offer.state == P else offer


def offer_accept(*, offer_id: int, driver: Driver, now: datetime | None = None) -> Offer:
    """Accept: the order is assigned to this driver. Accepting again returns the same offer."""
    now = now or timezone.now()
    with transaction.atomic():
        order_id = _own_offer_order_id(offer_id, driver)
        answered = _answered_already(offer_id)
        if answered is not None:
            if answered.state == Offer.State.ACCEPTED:
                return answered
            raise _refusal(answered, now)
        _lock_order(order_id)
        won = Offer.objects.filter(pk=offer_id, driver=driver, state=P, expires_at__gt=now).update(state=Offer.State.ACCEPTED, answered_at=now)
        offer = Offer.objects.select_related("order").get(pk=offer_id)
        if not won:
            if offer.state == Offer.State.ACCEPTED:
                return offer  # the same accept again (a resend after a reconnect)
            raise _refusal(offer, now)
        # Assigning withdraws every other pending offer of the order, as taken.
        dispatch_services.order_assign(order_id=order_id, driver_id=driver.pk, actor=dispatch_services.driver_actor(driver), now=now, reason="offer_accepted")
        _offer_audit(offer, "offer.accepted", actor=dispatch_services.driver_actor(driver), before=P, after=Offer.State.ACCEPTED)
        metrics.offer_event(offer.order.zone_id, "accepted", (now - offer.created_at).total_seconds())
        _after_commit(lambda: _notify("offer_result", offer_id))
    return offer


def offer_decline(*, offer_id: int, driver: Driver, reason: str = "", now: datetime | None = None) -> Offer:
    """Decline: the order moves on to the next candidate. Declining again returns the same offer."""
    now = now or timezone.now()
    with transaction.atomic():
        order_id = _own_offer_order_id(offer_id, driver)
        _lock_order(order_id)
        won = Offer.objects.filter(pk=offer_id, driver=driver, state=P).update(state=Offer.State.DECLINED, answered_at=now, decline_reason=reason[:255])
        offer = Offer.objects.select_related("order").get(pk=offer_id)
        if not won:
            if offer.state == Offer.State.DECLINED:
                return offer
            raise _refusal(offer, now)
        _offer_audit(offer, "offer.declined", actor=dispatch_services.driver_actor(driver), before=P, after=Offer.State.DECLINED, reason=reason[:255])
        metrics.offer_event(offer.order.zone_id, "declined", (now - offer.created_at).total_seconds())
        order_offer_next(order_id, now)
    return offer


def order_offer_next(order_id: int, now: datetime) -> None:
    """After an answer or a lapse: once no offer is out, offer the order to the next driver.

    Runs inside the caller's transaction, which holds the order's lock.
    """
    if not order_has_pending_offer(order_id):
        dispatch_services.order_dispatch(order_id=order_id, now=now)


def expire_offers_due(*, limit: int = 500) -> int:
    """The expiry sweep: lapse pending offers past their deadline (by the database's clock).

    Each offer is handled in its own short transaction after locking its order with SKIP
    LOCKED, so an answer in flight is never overtaken and two sweeps never expire the same
    offer. Safe to run twice and after missed ticks. Returns how many offers lapsed.
    """
    from offers.notify import driver_frames_batched

    due = list(Offer.objects.filter(state=P, expires_at__lte=Now()).order_by("expires_at").values_list("pk", "order_id")[:limit])
    with driver_frames_batched():
        return _expire_offers(due)


def _expire_offers(due: list[tuple[int, int]]) -> int:
    expired = 0
    for offer_id, order_id in due:
        with transaction.atomic():
            if Order.objects.select_for_update(skip_locked=True).filter(pk=order_id).values_list("pk", flat=True).first() is None:
                continue  # an answer or another sweep holds the order: next tick
            now = timezone.now()
            if not Offer.objects.filter(pk=offer_id, state=P, expires_at__lte=Now()).update(state=Offer.State.EXPIRED, answered_at=now):
                continue
            offer = Offer.objects.select_related("order").get(pk=offer_id)
            _offer_audit(offer, "offer.expired", actor=SYSTEM, before=P, after=Offer.State.EXPIRED)
            metrics.offer_event(offer.order.zone_id, "expired", (now - offer.created_at).total_seconds())
            _after_commit(lambda offer_id=offer_id: _notify("offer_withdrawn", offer_id))
            order_offer_next(order_id, now)
            expired += 1
    return expired


def offers_withdraw(*, queryset_filter: dict[str, Any], reason: str, now: datetime | None = None) -> list[int]:
    """Withdraw matching pending offers (inside the caller's transaction); returns their ids."""
    now = now or timezone.now()
    ids = list(Offer.objects.filter(state=P, **queryset_filter).values_list("pk", flat=True))
    withdrawn = []
    for offer_id in ids:
        if Offer.objects.filter(pk=offer_id, state=P).update(state=Offer.State.WITHDRAWN, withdrawn_reason=reason, answered_at=now):
            offer = Offer.objects.select_related("order").get(pk=offer_id)
            _offer_audit(offer, "offer.withdrawn", actor=SYSTEM, before=P, after=Offer.State.WITHDRAWN, reason=reason)
            metrics.offer_event(offer.order.zone_id, "withdrawn")
            _after_commit(lambda offer_id=offer_id: _notify("offer_withdrawn", offer_id))
            withdrawn.append(offer_id)
    return withdrawn


def offer_take_back(*, order_id: int, driver_id: int, reason: str) -> Offer | None:
    """The order was taken from the driver who had accepted its offer: that offer is taken back.

    Inside the caller's transaction, which holds the order's lock. Without it the partial
    unique index "one accepted offer per order" would refuse every later accept of the order.
    """
    offer = Offer.objects.select_related("order").filter(order_id=order_id, driver_id=driver_id, state=Offer.State.ACCEPTED).first()
    if offer is None:
        return None  # assigned the v1 way or by ops: no offer was accepted
    if not Offer.objects.filter(pk=offer.pk, state=Offer.State.ACCEPTED).update(state=Offer.State.TAKEN_BACK):
        return None
    _offer_audit(offer, "offer.taken_back", actor=SYSTEM, before=Offer.State.ACCEPTED, after=Offer.State.TAKEN_BACK, reason=reason)
    offer.state = Offer.State.TAKEN_BACK
    return offer


def offers_switch_off(*, now: datetime | None = None) -> int:
    """Offers were switched off: withdraw every pending offer and assign those orders the v1 way.

    The switch is read again for each order, under its share lock: a task that runs late, after
    ops turned offers back on, withdraws nothing."""
    from rollout.selectors import switch_is_on

    now = now or timezone.now()
    order_ids = set(Offer.objects.filter(state=P).values_list("order_id", flat=True))
    handled = 0
    for order_id in sorted(order_ids):
        with transaction.atomic():
            _lock_order(order_id)
            if switch_is_on(Feature.OFFERS, hold_until_commit=True):
                return handled
            offers_withdraw(queryset_filter={"order_id": order_id}, reason=Offer.WithdrawnReason.SWITCHED_OFF, now=now)
            dispatch_services.order_dispatch(order_id=order_id, now=now)
            handled += 1
    return handled


def offers_switched_off_due() -> int:
    """Sweep: while offers are switched off, no offer stays pending. The withdrawal enqueued
    when the switch was turned off is only the fast path; a lost task, a dead worker or an
    offer made in a race with the flip is caught on the next tick of the expiry sweep."""
    from rollout.selectors import switch_is_on

    if switch_is_on(Feature.OFFERS) or not Offer.objects.filter(state=P).exists():
        return 0
    return offers_switch_off()


def _notify(frame_type: str, offer_id: int) -> None:
    from offers.notify import offer_event_send

    offer_event_send(frame_type, offer_id)


def driver_offers_withdraw(*, driver_id: int) -> int:
    """The driver went offline or on a break: withdraw their pending offer and move its order on."""
    withdrawn = 0
    for offer_id, order_id in Offer.objects.filter(driver_id=driver_id, state=P).values_list("pk", "order_id"):
        with transaction.atomic():
            _lock_order(order_id)
            if offers_withdraw(queryset_filter={"pk": offer_id}, reason=Offer.WithdrawnReason.DRIVER_UNAVAILABLE):
                order_offer_next(order_id, timezone.now())
                withdrawn += 1
    return withdrawn


@dataclass(frozen=True)
class SocketOpened:
    """What an authenticated socket needs back: the sockets of the same driver it pushed out,
    and the frames the driver must get again."""

    evicted_channel_names: list[str]
    frames: list[dict[str, Any]]


def driver_socket_connect(*, driver_id: int, channel_name: str, app_version: str = "", now: datetime | None = None) -> SocketOpened:
    """An authenticated socket joined: mark the app as v2 and reachable, record the socket's
    presence, and return the frames the driver must get again (pending offer, active orders).

    A driver holds at most DISPATCH_MAX_SOCKETS_PER_DRIVER sockets: a new one pushes out the
    oldest. A phone that changes networks opens a new socket while the old one lingers until
    TCP notices; refusing the new one would lock the driver out exactly when they reconnect,
    while closing the oldest keeps them reachable and still bounds what one token can hold.
    """
    from offers import selectors
    from offers.frames import offer_frame, order_update_frame

    now = now or timezone.now()
    changes: dict[str, Any] = {"v2_connected_at": now, "last_heartbeat_at": now}
    if app_version:
        changes["app_version"] = app_version
    with transaction.atomic():
        # The update locks the driver's row: two sockets of one driver connecting at once
        # count each other's presence rows one after the other.
        if not Driver.objects.filter(pk=driver_id).update(**changes):
            raise NotFound(f"driver {driver_id} not found")
        DriverSocket.objects.filter(driver_id=driver_id).exclude(pk__in=selectors.connected_sockets(now=now).values("pk")).delete()
        live = list(DriverSocket.objects.filter(driver_id=driver_id).order_by("opened_at", "pk").values_list("pk", "channel_name"))
        evicted = live[: max(0, len(live) - settings.DISPATCH_MAX_SOCKETS_PER_DRIVER + 1)]
        DriverSocket.objects.filter(pk__in=[pk for pk, _ in evicted]).delete()
        DriverSocket.objects.create(driver_id=driver_id, channel_name=channel_name, opened_at=now, seen_at=now)
    frames = [offer_frame(offer) for offer in selectors.driver_pending_offers(driver_id)]
    frames += [order_update_frame(order) for order in selectors.driver_active_orders(driver_id)]
    return SocketOpened(evicted_channel_names=[name for _, name in evicted], frames=frames)


def driver_socket_seen(*, driver_id: int, channel_name: str, now: datetime | None = None) -> bool:
    """The server still holds this socket (its timer): refresh the presence row, or write it
    again if a sweep dropped it while this process or the database was stalled.

    Returns False when the socket has no place any more: its row is gone and the driver holds
    as many sockets as allowed (it was replaced, and the word of it was lost), so it closes."""
    from offers.selectors import connected_sockets

    now = now or timezone.now()
    if DriverSocket.objects.filter(channel_name=channel_name).update(seen_at=now):
        return True
    if connected_sockets(now).filter(driver_id=driver_id).count() >= settings.DISPATCH_MAX_SOCKETS_PER_DRIVER:
        return False
    DriverSocket.objects.get_or_create(channel_name=channel_name, defaults={"driver_id": driver_id, "opened_at": now, "seen_at": now})
    return True


def driver_socket_closed(*, channel_name: str) -> None:
    """The socket closed. A refresh racing this close may write the row again: it then stops
    counting after the presence timeout like any row nobody vouches for."""
    DriverSocket.objects.filter(channel_name=channel_name).delete()


def driver_socket_heartbeat(*, driver_id: int, now: datetime | None = None) -> None:
    """The app is alive (a heartbeat frame): what the silence sweep reads."""
    now = now or timezone.now()
    Driver.objects.filter(pk=driver_id).update(last_heartbeat_at=now)


def drop_stale_sockets_due(*, limit: int = 5000) -> int:
    """The presence sweep: delete rows of sockets no server vouched for within the presence
    timeout (by the database's clock). They already stopped counting as connected; this
    keeps the table as small as the sockets really open. Safe to run twice."""
    stale_before = Now() - timedelta(seconds=settings.DISPATCH_SOCKET_PRESENCE_TIMEOUT_S)
    stale = DriverSocket.objects.filter(seen_at__lt=stale_before).order_by("seen_at").values("pk")[:limit]
    deleted, _ = DriverSocket.objects.filter(pk__in=stale).delete()
    return deleted
