"""Demo data for a newcomer: a city in zones, a shop, 20 drivers, two staff users, some orders.

Safe to run again: everything is looked up by a stable key first, and passwords and tokens
made on the first run are kept (in var/demo-credentials.json) and printed again.
"""

import json
import random
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from audit.actors import Actor
from availability.services import driver_position_update
from dispatch import services
from dispatch.models import Driver, Order, ShopChannel, Zone
from tracking.selectors import tracking_link_shown
from usecases import orders as order_usecases
from usecases.drivers import driver_go_online
from usecases.intake import webhook_receive
from vendure import sample_payloads

DEMO = Actor.system("demo data")
SHOP_TOKEN = "demo-channel"
SHOP_SECRET = "demo-webhook-secret-change-me"
PICKUP = (52.5163, 13.3777)

ZONES: list[dict[str, Any]] = [
    {"slug": "mitte", "name": "Berlin Mitte", "box": (52.505, 13.36, 52.535, 13.42), "prefixes": ["101"]},
    {"slug": "kreuzberg", "name": "Kreuzberg", "box": (52.485, 13.38, 52.505, 13.45), "prefixes": ["109"]},
    {"slug": "prenzlauer-berg", "name": "Prenzlauer Berg", "box": (52.535, 13.40, 52.555, 13.44), "prefixes": ["104"]},
    {"slug": "spandau", "name": "Spandau (no driver online)", "box": (52.52, 13.16, 52.56, 13.23), "prefixes": ["135"]},
]

DRIVER_NAMES = [
    "Amira Haddad",
    "Ben Krüger",
    "Chiara Rossi",
    "Deniz Yılmaz",
    "Elif Demir",
    "Felix Wagner",
    "Greta Nowak",
    "Hugo Martin",
    "Ines Costa",
    "Jonas Becker",
    "Kofi Mensah",
    "Lena Fischer",
    "Mateo García",
    "Nora Lindqvist",
    "Omar Farouk",
    "Paula Schmidt",
    "Quentin Dubois",
    "Rosa Weber",
    "Samir Aziz",
    "Tara Novak",
]


def box_polygon(south: float, west: float, north: float, east: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]}


class Command(BaseCommand):
    help = "Load demo data (idempotent) and print the staff passwords and a few driver tokens."

    def handle(self, *args: Any, **options: Any) -> None:
        credentials_path = settings.VAR_DIR / "demo-credentials.json"
        settings.VAR_DIR.mkdir(exist_ok=True)
        credentials = json.loads(credentials_path.read_text()) if credentials_path.exists() else {}
        rng = random.Random(7)
        with transaction.atomic():
            zones = self._zones()
            self._quick_escalation(zones["spandau"])
            channel = self._shop()
            passwords = {name: self._staff_user(name, credentials.get(name)) for name in ("ops", "support")}
        credentials.update(passwords)
        credentials_path.write_text(json.dumps(credentials))
        self._v2_on()
        drivers = self._drivers(zones, rng)
        self._orders(channel, zones, rng)
        self._print(passwords, drivers)

    def _v2_on(self) -> None:
        """The demo shows v2: offers and availability on for every driver whose app speaks it."""
        from rollout.models import Feature
        from rollout.services import rollout_set
        from usecases.switches import switch_set

        for feature in Feature.values:
            switch_set(name=feature, active=True, actor=DEMO)
            rollout_set(feature=feature, percentage=100, actor=DEMO)

    def _quick_escalation(self, zone: Zone) -> None:
        """Spandau has nobody online: its own short limits escalate its orders within a minute,
        so a newcomer sees escalations in admin (Escalation → Escalations) right away."""
        from escalation.models import EscalationPolicy

        if not EscalationPolicy.objects.filter(zone=zone).exists():
            policy = EscalationPolicy(zone=zone, unassigned_limit_s=60, no_candidates_limit_s=30)
            services.reference_data_save(instance=policy, changed_fields=["zone", "unassigned_limit_s", "no_candidates_limit_s"], is_new=True, actor=DEMO)

    def _zones(self) -> dict[str, Zone]:
        zones = {}
        for spec in ZONES:
            zone, _ = Zone.objects.update_or_create(
                slug=spec["slug"], defaults={"name": spec["name"], "area": box_polygon(*spec["box"]), "postal_code_prefixes": spec["prefixes"]}
            )
            zones[spec["slug"]] = zone
        return zones

    def _shop(self) -> ShopChannel:
        channel, _ = (
            services.shop_channel_register(
                token=SHOP_TOKEN,
                name="Demo Coffee Roasters",
                webhook_secret=SHOP_SECRET,
                pickup_lat=PICKUP[0],
                pickup_lon=PICKUP[1],
                pickup_address="Demo Coffee Roasters, Pariser Platz 1, 10117 Berlin",
                actor=DEMO,
            )
            if not ShopChannel.objects.filter(token=SHOP_TOKEN).exists()
            else (ShopChannel.objects.get(token=SHOP_TOKEN), False)
        )
        return channel

    def _staff_user(self, name: str, known_password: str | None) -> str:
        User = get_user_model()
        user, created = User.objects.get_or_create(username=name, defaults={"is_staff": True, "first_name": name.title()})
        password = known_password or secrets.token_urlsafe(12)
        if created or not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        user.groups.add(Group.objects.get(name=name))
        return password

    def _drivers(self, zones: dict[str, Zone], rng: random.Random) -> list[tuple[Driver, str]]:
        city_zones = [z for slug, z in zones.items() if slug != "spandau"]
        result = []
        for n, name in enumerate(DRIVER_NAMES):
            phone = f"+49 151 000{n:04d}"
            driver = Driver.objects.filter(phone=phone).select_related("user").first()
            if driver is None:
                zone = city_zones[n % len(city_zones)]
                slugs = [zone.slug] + (["spandau"] if n >= 16 else [])  # Spandau only has offline drivers
                driver, token = services.driver_create(
                    name=name,
                    phone=phone,
                    zone_slugs=slugs,
                    capacity=1 + n % 3,
                    actor=DEMO,
                    vehicle=[Driver.Vehicle.BICYCLE, Driver.Vehicle.SCOOTER, Driver.Vehicle.CAR][n % 3],
                )
                if n < 16:  # the last four stay offline
                    driver_go_online(driver_id=driver.pk, actor=DEMO)
                    spec = next(s for s in ZONES if s["slug"] == zone.slug)
                    south, west, north, east = spec["box"]
                    driver_position_update(driver_id=driver.pk, lat=rng.uniform(south, north), lon=rng.uniform(west, east))
            else:
                token = Token.objects.get_or_create(user=driver.user)[0].key
            result.append((driver, token))
        return result

    def _orders(self, channel: ShopChannel, zones: dict[str, Zone], rng: random.Random) -> None:
        plan = [
            ("DEMO-1001", "mitte", "delivered"),
            ("DEMO-1002", "mitte", "picked_up"),
            ("DEMO-1003", "kreuzberg", "assigned"),
            ("DEMO-1004", "kreuzberg", "delivered"),
            ("DEMO-1005", "prenzlauer-berg", "picked_up"),
            ("DEMO-1006", "mitte", "cancelled"),
            ("DEMO-1007", "spandau", "unassigned"),
            ("DEMO-1008", "prenzlauer-berg", "failed"),
        ]
        for number, (code, slug, target) in enumerate(plan, start=1):
            if Order.objects.filter(channel=channel, code=code).exists():
                continue
            spec = next(s for s in ZONES if s["slug"] == slug)
            south, west, north, east = spec["box"]
            order = sample_payloads.order_payload(
                vendure_order_id=str(9000 + number),
                code=code,
                lat=rng.uniform(south, north),
                lon=rng.uniform(west, east),
                postal_code=spec["prefixes"][0] + "15",
                fee_minor=rng.choice([399, 499, 599]),
            )
            webhook_receive(channel=channel, payload=sample_payloads.event("order.ready_for_delivery", order))
            self._advance(Order.objects.get(channel=channel, code=code), target)

    def _advance(self, order: Order, target: str) -> None:
        if target == "cancelled":
            order_usecases.order_cancel(order_id=order.pk, actor=Actor.shop(SHOP_TOKEN, "Demo Coffee Roasters"), reason="customer changed their mind")
            return
        if order.driver is None or target in ("assigned", "unassigned"):
            return
        order_usecases.order_pick_up(order_id=order.pk, driver=order.driver)
        if target == "delivered":
            order_usecases.order_deliver(order_id=order.pk, driver=order.driver, proof_note="Left with the neighbour")
        elif target == "failed":
            order_usecases.order_fail(order_id=order.pk, driver=order.driver, actor=services.driver_actor(order.driver), reason="customer not at home")

    def _print(self, passwords: dict[str, str], drivers: list[tuple[Driver, str]]) -> None:
        out = self.stdout.write
        out("")
        out("Demo data is ready.")
        out(f"  ops user:      ops / {passwords['ops']}      (changes dispatch data)")
        out(f"  support user:  support / {passwords['support']}  (read-only)")
        out(f"  shop channel:  {SHOP_TOKEN}, webhook secret {SHOP_SECRET}")
        out("  driver API tokens (Authorization: Token <key>):")
        for driver, token in drivers[:3]:
            out(f"    {driver.name:<16} {token}")
        out(f"    ... {len(drivers) - 3} more: see Tokens in admin")
        out("  v2 offers and availability are on at 100% (Kill-switches and rollout in admin)")
        on_the_way = Order.objects.filter(code="DEMO-1002").first()
        if on_the_way is not None:
            link = tracking_link_shown(on_the_way.pk)
            out(f"  a customer's tracking page (DEMO-1002, on the way): {link.url or link.words}")
