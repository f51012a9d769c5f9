"""Kill-switches flipped, with what switching a v2 feature off undoes."""

from django.db import transaction
from waffle.models import Switch

from audit.actors import Actor
from dispatch.after_commit import after_commit
from rollout import services as rollout
from rollout.models import Feature


def switch_flip(*, name: str, active: bool, actor: Actor) -> Switch:
    """Turn a switch on or off in the caller's transaction (the admin's change form). Off takes
    effect from the next decision on; what the feature left behind is undone after commit
    (pending offers withdrawn and their orders assigned the v1 way; breaks ended). The sweeps
    do the same on their next tick if that task was lost."""
    switch, flipped = rollout.switch_set(name=name, active=active, actor=actor)
    if flipped and not active:
        after_commit(lambda: _feature_switched_off(name))
    return switch


def switch_set(*, name: str, active: bool, actor: Actor) -> Switch:
    """The same, as an entry point of its own."""
    with transaction.atomic(durable=True):
        return switch_flip(name=name, active=active, actor=actor)


def _feature_switched_off(name: str) -> None:
    if name == Feature.OFFERS:
        from usecases.tasks import offers_switch_off

        offers_switch_off.delay()
    elif name == Feature.AVAILABILITY:
        from usecases.tasks import breaks_end_all

        breaks_end_all.delay()
