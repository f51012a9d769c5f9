"""The production-shape run's own steps, each run as a separate process on the run's database.

    python -m tests.production.scenario seed FAKE_VENDURE_URL TOKEN   -> JSON: drivers and their tokens
    python -m tests.production.scenario flip on|off                  -> JSON: the wall-clock time after the flip committed
    python -m tests.production.scenario check JSON_OF_THE_RUN        -> JSON: every invariant broken, by name

Each is a process of its own, as ops flipping a switch from another server would be, and as an
auditor reading the database after the run would be. DATABASE_URL and REDIS_URL name the run's.
"""

import itertools
import json
import os
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatch.settings")

ZONE_BOX = {"type": "Polygon", "coordinates": [[[13.36, 52.505], [13.42, 52.505], [13.42, 52.535], [13.36, 52.535], [13.36, 52.505]]]}
DRIVERS = 16
CAPACITY = 2
SHOP_TOKEN, SHOP_SECRET = "prod-shape-shop", "prod-shape-webhook-secret-0123456789"
# Short limits, so that what waits too long escalates within the run.
LIMITS = {"unassigned_limit_s": 20, "no_candidates_limit_s": 15, "pickup_limit_s": 45, "max_reassignments": 2}
SWEEP_SLACK_S = 25  # a due order is escalated by the next escalation sweep (every 10 s), with room for a dead worker


def seed(vendure_url: str, vendure_token: str) -> dict[str, Any]:
    from audit.actors import Actor
    from dispatch.models import Zone
    from dispatch.services import driver_create, shop_channel_register
    from escalation.models import EscalationPolicy
    from rollout.services import rollout_set
    from usecases.switches import switch_set

    ops = Actor.system("production-shape seed")
    zone = Zone.objects.create(name="Mitte", slug="mitte", area=ZONE_BOX, postal_code_prefixes=["101"], offer_timeout_s=5, offer_fanout=2)
    EscalationPolicy.objects.create(zone=zone, **LIMITS)
    shop_channel_register(
        token=SHOP_TOKEN,
        name="Production-shape shop",
        webhook_secret=SHOP_SECRET,
        pickup_lat=52.5163,
        pickup_lon=13.3777,
        admin_api_url=vendure_url,
        admin_api_token=vendure_token,
        actor=ops,
    )
    drivers = []
    for n in range(DRIVERS):
        driver, token = driver_create(name=f"Driver {n}", phone=f"+49151{n:06d}", zone_slugs=["mitte"], capacity=CAPACITY, actor=ops)
        drivers.append({"id": driver.pk, "name": driver.name, "token": token})
    for feature in ("v2_offers", "v2_availability", "v2_auto_reassign"):
        switch_set(name=feature, active=True, actor=ops)
        rollout_set(feature=feature, percentage=100, actor=ops)
    return {"drivers": drivers, "shop_token": SHOP_TOKEN, "shop_secret": SHOP_SECRET}


def flip(on: bool) -> dict[str, Any]:
    from audit.actors import Actor
    from usecases.switches import switch_set

    switch_set(name="v2_offers", active=on, actor=Actor.system("ops in a third process"))
    return {"committed_at": time.time()}


def check(run: dict[str, Any]) -> dict[str, Any]:
    """Every invariant of DESIGN.md that a whole run can break, read from the database."""
    from django.db.models import Count, Q
    from django.db.models.functions import Now

    from audit.models import AuditEvent
    from dispatch.models import Driver, Order
    from escalation.models import Escalation
    from offers.models import Offer

    broken: dict[str, list[Any]] = defaultdict(list)
    at = lambda seconds: datetime.fromtimestamp(seconds, tz=UTC)  # noqa: E731

    # 1. One winner: at most one accepted offer per order, held by the order's driver.
    for row in Offer.objects.values("order_id").annotate(n=Count("id", filter=Q(state="accepted"))).filter(n__gt=1):
        broken["one accepted offer per order"].append(row)
    for offer in Offer.objects.filter(state="accepted").select_related("order"):
        if offer.order.status in ("assigned", "picked_up", "delivered") and offer.order.driver_id != offer.driver_id:
            broken["the accepted offer's driver holds the order"].append(offer.pk)

    # 7. No offer made while the switch was off: not after the flip committed, not before it was on again.
    made_while_off = Offer.objects.filter(created_at__gt=at(run["off_committed_at"]), created_at__lt=at(run["on_committed_at"]))
    broken["no offer after the switch-off committed"].extend(made_while_off.values_list("pk", "created_at"))
    if not AuditEvent.objects.filter(kind="order.assigned", occurred_at__gt=at(run["off_committed_at"]), occurred_at__lt=at(run["on_committed_at"])).exists():
        broken["v1 assignment while the switch was off"].append("no order was assigned directly while offers were off")
    if not Offer.objects.filter(created_at__gt=at(run["on_committed_at"])).exists():
        broken["offers again once the switch is back on"].append("no offer after the switch came back on")

    # 2. Capacity never exceeded, at any point of the run: replay each driver's holdings from
    # the audit trail (events on one driver are ordered by the driver's row lock), and now.
    capacity = dict(Driver.objects.values_list("pk", "capacity"))
    held: dict[int, int] = defaultdict(int)
    active = {"assigned", "picked_up"}
    for before, after in AuditEvent.objects.filter(subject_type="order", kind__startswith="order.").order_by("id").values_list("before", "after"):
        before, after = before or {}, after or {}
        if "status" not in after:
            continue
        was = before.get("driver") if before.get("status") in active else None
        now_ = after.get("driver") if after.get("status") in active else None
        if was != now_:
            if was is not None:
                held[was] -= 1
            if now_ is not None:
                held[now_] += 1
                if held[now_] > capacity[now_]:
                    broken["capacity never exceeded (replayed)"].append({"driver": now_, "held": held[now_]})
    for driver in Driver.objects.all():
        holding = Order.objects.filter(driver=driver, status__in=active).count()
        if not (holding == driver.active_order_count <= driver.capacity):
            broken["capacity counter matches the orders held"].append({"driver": driver.pk, "held": holding, "counter": driver.active_order_count})
        if Offer.objects.filter(driver=driver, state="pending").count() > 1:
            broken["at most one pending offer per driver"].append(driver.pk)

    # 3. One audit event per change: each subject's events chain before -> after, and the last
    # one is the state it is in.
    for order in Order.objects.all():
        status = None
        for event in AuditEvent.objects.filter(subject_type="order", subject_id=str(order.pk)).order_by("id"):
            if event.after is None or "status" not in event.after:
                continue
            if (event.before or {}).get("status") != status:
                broken["order events chain"].append({"order": order.pk, "event": event.kind, "expected_before": status})
            status = event.after["status"]
        if status != order.status:
            broken["order's last event is its status"].append({"order": order.pk, "status": order.status, "last": status})
    for offer in Offer.objects.all():
        states = list(AuditEvent.objects.filter(subject_type="offer", subject_id=str(offer.pk)).order_by("id").values_list("before", "after"))
        chain_ok = bool(states) and states[0][0] is None
        chain_ok = chain_ok and all(
            (before or {}).get("state") == (previous_after or {}).get("state") for (_, previous_after), (before, _) in itertools.pairwise(states)
        )
        if not chain_ok or (states[-1][1] or {}).get("state") != offer.state:
            broken["offer events chain"].append({"offer": offer.pk, "state": offer.state, "events": states})

    # 5. No order waits silently: waiting or not picked up past its zone's limit (plus one sweep)
    # means an escalation was opened for it.
    waiting_too_long = Order.objects.filter(
        status__in=["received", "unassigned"], status_changed_at__lt=Now() - timedelta(seconds=LIMITS["unassigned_limit_s"] + SWEEP_SLACK_S)
    )
    pickup_overdue = Order.objects.filter(status="assigned", assigned_at__lt=Now() - timedelta(seconds=LIMITS["pickup_limit_s"] + SWEEP_SLACK_S))
    for order in list(waiting_too_long) + list(pickup_overdue):
        if not Escalation.objects.filter(order=order).exists() and order.status in ("received", "unassigned", "assigned"):
            broken["no order waits silently"].append({"order": order.pk, "status": order.status, "since": order.status_changed_at.isoformat()})

    # 6 and 11. Every order the shop handed over exists once; every pickup and delivery reached the shop.
    known = set(Order.objects.values_list("vendure_order_id", flat=True))
    broken["every acknowledged webhook's order exists"].extend(sorted(set(run["acknowledged_orders"]) - known))
    reported = run["fulfillments"]  # trackingCode -> [states], as the shop saw them
    for order in Order.objects.filter(picked_up_at__isnull=False):
        states = reported.get(order.reference, [])
        expected = "Delivered" if order.status == "delivered" else "Shipped"
        if order.status in ("picked_up", "delivered") and states != [expected]:
            broken["no report to the shop lost or doubled"].append({"order": order.code, "status": order.status, "shop_has": states})

    summary = {
        "orders": Order.objects.count(),
        "by_status": dict(Order.objects.values_list("status").annotate(n=Count("id"))),
        "offers": dict(Offer.objects.values_list("state").annotate(n=Count("id"))),
        "escalations": Escalation.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }
    return {"broken": {name: cases for name, cases in broken.items() if cases}, "summary": summary}


def main() -> None:
    import django

    django.setup()
    command, args = sys.argv[1], sys.argv[2:]
    if command == "seed":
        result = seed(args[0], args[1])
    elif command == "flip":
        result = flip(args[0] == "on")
    elif command == "check":
        result = check(json.loads(open(args[0]).read()))
    else:
        raise SystemExit(f"unknown step {command}")
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
