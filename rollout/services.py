"""Flipping kill-switches and moving rollout percentages, each audited with the staff user."""

from django.db import transaction
from waffle.models import Switch

from audit.actors import Actor
from audit.services import audit_record
from dispatch.after_commit import after_commit
from dispatch.errors import InvalidInput
from rollout.models import Feature, RolloutPolicy


def switch_set(*, name: str, active: bool, actor: Actor) -> tuple[Switch, bool]:
    """Turn a waffle switch on or off, in the caller's transaction; returns (switch, whether it
    flipped). Off takes effect from the next decision on."""
    with transaction.atomic():
        switch, _ = Switch.objects.get_or_create(name=name, defaults={"active": False})
        if switch.active == active:
            return switch, False
        if not Switch.objects.filter(pk=switch.pk, active=switch.active).update(active=active):
            switch.refresh_from_db()
            return switch, False  # someone flipped it the same way first
        switch.active = active
        # Decisions read the switch from the database (rollout.selectors.switch_is_on); waffle's
        # own cache is only dropped for anything else that asks waffle, once the flip is visible.
        after_commit(switch.flush)
        audit_record(
            "switch.flipped",
            actor=actor,
            subject_type="switch",
            subject_id=name,
            before={"active": not active},
            after={"active": active},
        )
    return switch, True


def rollout_set(*, feature: str, percentage: int, actor: Actor) -> RolloutPolicy:
    if feature not in Feature.values:
        raise InvalidInput(f"unknown feature {feature!r}; known: {', '.join(Feature.values)}")
    if isinstance(percentage, bool) or not isinstance(percentage, int) or not 0 <= percentage <= 100:
        raise InvalidInput("the rollout percentage is a whole number from 0 to 100", percentage=percentage)
    with transaction.atomic():
        policy, _ = RolloutPolicy.objects.select_for_update().get_or_create(feature=feature)
        before = policy.percentage
        if before != percentage:
            policy.percentage = percentage
            policy.save(update_fields=["percentage", "updated_at"])
            audit_record(
                "rollout.changed",
                actor=actor,
                subject_type="rollout",
                subject_id=feature,
                before={"percentage": before},
                after={"percentage": percentage},
            )
    return policy
