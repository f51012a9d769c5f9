"""Repair the orders that issue 10 item 5 left stuck: an order taken from a driver who had
accepted its offer kept that offer `accepted`, so no later accept of the order could win.

Each accepted offer whose order is no longer its driver's (waiting again, or held by someone
else) becomes `taken_back`, with its audit event, as a take-back does from now on. Reversing
leaves the repaired rows as they are: putting them back would stick the orders again.
"""

from django.db import migrations
from django.db.models import F, Q
from django.utils import timezone


def take_back_stale(apps, schema_editor):  # type: ignore[no-untyped-def]
    Offer = apps.get_model("offers", "Offer")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    stale = Offer.objects.filter(state="accepted").filter(
        Q(order__status__in=["received", "unassigned"]) | (Q(order__driver__isnull=False) & ~Q(order__driver_id=F("driver_id")))
    )
    for offer in stale.select_related("order"):
        if not Offer.objects.filter(pk=offer.pk, state="accepted").update(state="taken_back"):
            continue
        AuditEvent.objects.create(
            occurred_at=timezone.now(),
            kind="offer.taken_back",
            actor_kind="system",
            actor_label="migration offers.0006",
            subject_type="offer",
            subject_id=str(offer.pk),
            order_id=offer.order_id,
            order_code=offer.order.code,
            driver_id=offer.driver_id,
            zone_id=offer.order.zone_id,
            before={"state": "accepted"},
            after={"state": "taken_back"},
            data={"reason": "repaired_after_take_back"},
        )


class Migration(migrations.Migration):
    dependencies = [("offers", "0005_drop_stale_sockets_sweep"), ("audit", "0003_support_search_indexes"), ("dispatch", "0011_zone_health_threshold_bounds")]
    operations = [migrations.RunPython(take_back_stale, migrations.RunPython.noop)]
