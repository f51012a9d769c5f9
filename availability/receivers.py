"""When v2 availability is switched off, drivers return to v1's online and offline; a
deactivated driver goes offline."""

from typing import Any

from rollout.models import Feature
from rollout.signals import feature_switched_off


def on_feature_switched_off(sender: Any, name: str, **kwargs: Any) -> None:
    if name == Feature.AVAILABILITY:
        from availability.tasks import breaks_end_all

        breaks_end_all.delay()


def on_user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A deactivated driver takes no more work: offline now, in the same transaction as the
    deactivation, so their pending offer is withdrawn and moves on (driver_became_unavailable).

    Orders they already hold stay theirs: they may carry the goods, and going offline is what
    the existing rules act on (v2_auto_reassign takes back what is not picked up; otherwise
    the pickup and delivery limits escalate to ops), exactly as for a driver who went home.
    """
    if instance.is_active:
        return
    from audit.actors import SYSTEM
    from availability.services import driver_go_offline
    from dispatch.models import Driver

    driver_id = Driver.objects.filter(user_id=instance.pk).exclude(availability=Driver.Availability.OFFLINE).values_list("pk", flat=True).first()
    if driver_id is not None:
        driver_go_offline(driver_id=driver_id, actor=SYSTEM, reason="deactivated")


def connect() -> None:
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_save

    feature_switched_off.connect(on_feature_switched_off, dispatch_uid="availability.switch_off")
    post_save.connect(on_user_saved, sender=get_user_model(), dispatch_uid="availability.user_deactivated")
