from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.actors import Actor
from dispatch.errors import DispatchError
from dispatch.models import Driver
from dispatch.services import driver_create


class Command(BaseCommand):
    help = "Create a driver and print their API token (Authorization: Token <key>)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--phone", required=True)
        parser.add_argument("--zone", required=True, action="append", help="Zone slug; repeat for several zones")
        parser.add_argument("--capacity", type=int, default=1, help="Orders the driver can carry at once")
        parser.add_argument("--vehicle", default=Driver.Vehicle.BICYCLE, choices=Driver.Vehicle.values)
        parser.add_argument("--username", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            driver, token = driver_create(
                name=options["name"],
                phone=options["phone"],
                zone_slugs=options["zone"],
                capacity=options["capacity"],
                vehicle=options["vehicle"],
                username=options["username"],
                actor=Actor.system("manage.py create_driver"),
            )
        except DispatchError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Created driver {driver.name} (id {driver.pk}).")
        self.stdout.write(f"API token: {token}")
