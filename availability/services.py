"""Availability transitions of a driver, each a compare-and-set with its audit event."""

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_record
from dispatch.errors import IllegalTransition, InvalidInput, NotFound
from dispatch.models import Driver
from dispatch.signals import driver_became_available

A = Driver.Availability


def _driver_availability_set(*, driver_id: int, to: str, actor: Actor, now: datetime) -> Driver:
    with transaction.atomic():
        current = Driver.objects.filter(pk=driver_id).values_list("availability", flat=True).first()
        if current is None:
            raise NotFound(f"driver {driver_id} not found")
        if current == to:
            # Idempotent: going online twice is not an error and writes nothing.
            return Driver.objects.get(pk=driver_id)
        changes = {"availability": to, "availability_changed_at": now}
        if to == A.AVAILABLE:
            changes["idle_since"] = now
        if not Driver.objects.filter(pk=driver_id, availability=current).update(**changes):
            now_state = Driver.objects.filter(pk=driver_id).values_list("availability", flat=True).first()
            raise IllegalTransition(f"driver {driver_id}", str(now_state), to)
        driver = Driver.objects.get(pk=driver_id)
        audit_record(
            f"driver.{'online' if to == A.AVAILABLE else 'offline'}",
            actor=actor,
            subject_type="driver",
            subject_id=driver_id,
            driver_id=driver_id,
            before={"availability": current},
            after={"availability": to},
        )
        if to == A.AVAILABLE:
            transaction.on_commit(lambda: driver_became_available.send(sender=Driver, driver_id=driver_id), robust=True)
    return driver


def driver_go_online(*, driver_id: int, actor: Actor, now: datetime | None = None) -> Driver:
    return _driver_availability_set(driver_id=driver_id, to=A.AVAILABLE, actor=actor, now=now or timezone.now())


def driver_go_offline(*, driver_id: int, actor: Actor, now: datetime | None = None) -> Driver:
    """A driver going offline keeps the orders they hold; they just get no new ones."""
    return _driver_availability_set(driver_id=driver_id, to=A.OFFLINE, actor=actor, now=now or timezone.now())


def driver_position_update(*, driver_id: int, lat: float, lon: float, at: datetime | None = None) -> None:
    """Record where the driver is. Positions are telemetry, not state: they are not audited."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput("latitude must be within -90..90 and longitude within -180..180", lat=lat, lon=lon)
    now = timezone.now()
    at = min(at, now) if at else now  # a phone clock running ahead must not pin the position
    # Positions can arrive out of order; an older one never overwrites a newer one.
    updated = Driver.objects.filter(Q(last_position_at__isnull=True) | Q(last_position_at__lte=at), pk=driver_id).update(
        last_lat=lat, last_lon=lon, last_position_at=at
    )
    if not updated and not Driver.objects.filter(pk=driver_id).exists():
        raise NotFound(f"driver {driver_id} not found")
