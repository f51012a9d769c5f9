"""When v2 availability is switched off, drivers return to v1's online and offline."""

from typing import Any

from rollout.models import Feature
from rollout.signals import feature_switched_off


def on_feature_switched_off(sender: Any, name: str, **kwargs: Any) -> None:
    if name == Feature.AVAILABILITY:
        from availability.tasks import breaks_end_all

        breaks_end_all.delay()


def connect() -> None:
    feature_switched_off.connect(on_feature_switched_off, dispatch_uid="availability.switch_off")
