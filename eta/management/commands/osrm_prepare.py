"""`manage.py osrm_prepare`: the demo city's network prepared for OSRM (MLD), one dataset per
profile, cached under var/osrm/data/<network version>/<profile>/. The OSRM executables come
from the osrm-bindings wheel (bin/ensure-osrm unpacks it under var/osrm/)."""

import subprocess
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from eta.street_network import NETWORK_VERSION, demo_city_osm

PROFILES = ("bicycle", "car", "foot")


def osrm_home() -> Path:
    return Path(settings.VAR_DIR) / "osrm"


def prepared_dataset(profile: str) -> Path:
    return osrm_home() / "data" / NETWORK_VERSION / profile / "city.osrm"


class Command(BaseCommand):
    help = "Prepare the demo city's street network for OSRM (bicycle, car and foot profiles)."

    def handle(self, *args: Any, **options: Any) -> None:
        home = osrm_home()
        binaries, profiles = home / "osrm" / "bin", home / "osrm" / "share" / "profiles"
        if not (binaries / "osrm-extract").exists():
            raise CommandError(f"No OSRM executables under {binaries}: run bin/ensure-osrm first.")
        for profile in PROFILES:
            dataset = prepared_dataset(profile)
            if (dataset.parent / "ready").exists():
                continue
            dataset.parent.mkdir(parents=True, exist_ok=True)
            demo_city_osm(dataset.parent / "city.osm")
            for step in (
                [str(binaries / "osrm-extract"), "-p", str(profiles / f"{profile}.lua"), "city.osm"],
                [str(binaries / "osrm-partition"), "city.osrm"],
                [str(binaries / "osrm-customize"), "city.osrm"],
            ):
                result = subprocess.run(step, cwd=dataset.parent, capture_output=True, text=True, check=False)  # noqa: S603 (our own executables and files)
                if result.returncode != 0:
                    raise CommandError(f"{' '.join(step)} failed: {result.stderr[-2000:]}")
            (dataset.parent / "ready").write_text(NETWORK_VERSION + "\n")
            self.stdout.write(f"prepared {profile}: {dataset}")
