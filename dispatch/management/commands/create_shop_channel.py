from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.actors import Actor
from dispatch.errors import DispatchError
from dispatch.services import shop_channel_register


def lat_lon(value: str) -> tuple[float, float]:
    try:
        lat, lon = (float(part) for part in value.split(","))
    except ValueError as exc:
        raise CommandError(f"--pickup must be LAT,LON (got {value!r})") from exc
    return lat, lon


class Command(BaseCommand):
    help = "Register a Vendure shop channel, or update it when the token is already known."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--token", required=True, help="Vendure channel token (sent as X-Dispatch-Channel)")
        parser.add_argument("--name", required=True)
        parser.add_argument("--secret", required=True, help="Shared webhook secret (16+ characters)")
        parser.add_argument("--pickup", required=True, help="Pickup point as LAT,LON")
        parser.add_argument("--pickup-address", default="")
        parser.add_argument("--admin-api-url", default="", help="Vendure Admin API URL, for progress reports")
        parser.add_argument("--admin-api-token", default="", help="Bearer token for the Admin API")

    def handle(self, *args: Any, **options: Any) -> None:
        lat, lon = lat_lon(options["pickup"])
        try:
            channel, created = shop_channel_register(
                token=options["token"],
                name=options["name"],
                webhook_secret=options["secret"],
                pickup_lat=lat,
                pickup_lon=lon,
                pickup_address=options["pickup_address"],
                admin_api_url=options["admin_api_url"],
                admin_api_token=options["admin_api_token"],
                actor=Actor.system("manage.py create_shop_channel"),
            )
        except DispatchError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{'Created' if created else 'Updated'} shop channel {channel.name} ({channel.token}).")
