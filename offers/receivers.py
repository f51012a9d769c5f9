"""Keep offers consistent with the order, the driver and the kill-switch."""

from typing import Any

from rest_framework.authtoken.models import Token

from dispatch.models import Order
from dispatch.signals import driver_became_unavailable, order_moved, order_stopped_waiting
from offers.models import Offer
from rollout.models import Feature
from rollout.signals import feature_switched_off

WITHDRAW_REASON = {Order.Status.CANCELLED: Offer.WithdrawnReason.ORDER_CANCELLED}


def on_order_stopped_waiting(sender: Any, order_id: int, to: str, reason: str, **kwargs: Any) -> None:
    """Inside the order's transaction: its open offers are withdrawn with the change."""
    from offers.services import offers_withdraw

    if to == Order.Status.ASSIGNED and reason == "offer_accepted":
        withdraw_reason = Offer.WithdrawnReason.TAKEN
    else:
        withdraw_reason = WITHDRAW_REASON.get(to, Offer.WithdrawnReason.ORDER_ASSIGNED)  # type: ignore[call-overload]
    offers_withdraw(queryset_filter={"order_id": order_id}, reason=withdraw_reason)


def on_order_moved(sender: Any, order_id: int, before: str, after: str, driver_id: int | None, reason: str = "", **kwargs: Any) -> None:
    """Inside the order's transaction: an order taken from its driver takes back their accepted
    offer, so the next driver's accept can win (one accepted offer per order)."""
    from offers.services import offer_take_back

    if before == Order.Status.ASSIGNED and after == Order.Status.UNASSIGNED and driver_id is not None:
        offer_take_back(order_id=order_id, driver_id=driver_id, reason=reason)


def on_driver_became_unavailable(sender: Any, driver_id: int, reason: str, **kwargs: Any) -> None:
    from offers.services import driver_offers_withdraw

    driver_offers_withdraw(driver_id=driver_id)


def on_feature_switched_off(sender: Any, name: str, **kwargs: Any) -> None:
    if name == Feature.OFFERS:
        from offers.tasks import offers_switch_off

        offers_switch_off.delay()


def on_credentials_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A token deleted or a user saved: the driver's open sockets check their credentials
    after commit, and close at once if they no longer hold."""
    from django.db import transaction

    from offers.notify import driver_credentials_changed_send

    user_id = instance.user_id if isinstance(instance, Token) else instance.pk
    if isinstance(instance, Token) or not instance.is_active:
        transaction.on_commit(lambda: driver_credentials_changed_send(user_id=user_id), robust=True)


def connect() -> None:
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_delete, post_save

    post_delete.connect(on_credentials_changed, sender=Token, dispatch_uid="offers.token_deleted")
    post_save.connect(on_credentials_changed, sender=get_user_model(), dispatch_uid="offers.user_saved")
    order_stopped_waiting.connect(on_order_stopped_waiting, dispatch_uid="offers.withdraw_on_order_change")
    order_moved.connect(on_order_moved, dispatch_uid="offers.take_back_on_order_moved")
    driver_became_unavailable.connect(on_driver_became_unavailable, dispatch_uid="offers.withdraw_on_driver_unavailable")
    feature_switched_off.connect(on_feature_switched_off, dispatch_uid="offers.switch_off")
