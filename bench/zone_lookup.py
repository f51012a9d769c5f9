"""Placing an order in its zone as a city's zones multiply: 5 zones against 500.

Three cases, each the call intake makes (dispatch.selectors.zone_for_dropoff): a drop-off in
one of many small zones (4 corners), in one of many zones of 100 vertices, and a drop-off in
no zone, placed by its postal code (longest prefix). The zones tile a region side by side, as
a city's do, and each lookup picks a zone at random. The target (issue 11): with 500 zones
each case within 1.5x of the same case with 5 (p50 of BENCH_ZONE_ROUNDS calls). The machine is
shared, so each case is measured BENCH_ZONE_REPEATS times, 5 and 500 zones in turn, and the
median of the p50s is compared. Also shown: the first lookup after a zone is edited, which
rebuilds this process's index.
"""

import math
import os
import random
import statistics
import time
from typing import Any

from bench.harness import prepare_database, summarise, write_result

COUNTS = [int(x) for x in os.environ.get("BENCH_ZONE_COUNTS", "5,500").split(",")]
ROUNDS = int(os.environ.get("BENCH_ZONE_ROUNDS", "1000"))
REPEATS = int(os.environ.get("BENCH_ZONE_REPEATS", "3"))
TARGET_RATIO = 1.5
COLUMNS = 25
CELL_DEG = 0.02  # about 2.2 km north-south
SOUTH, WEST = 52.0, 13.0


def cell(n: int) -> tuple[float, float, float, float]:
    """(south, west, north, east) of the n-th cell of the grid the zones tile."""
    row, column = divmod(n, COLUMNS)
    south, west = SOUTH + row * CELL_DEG, WEST + column * CELL_DEG
    return south, west, south + CELL_DEG, west + CELL_DEG


def area(n: int, vertices: int) -> dict[str, Any]:
    south, west, north, east = cell(n)
    if vertices == 4:
        ring = [[west, south], [east, south], [east, north], [west, north]]
    else:  # a polygon of `vertices` corners inscribed in the cell
        lat, lon, r = (south + north) / 2, (west + east) / 2, CELL_DEG / 2 * 0.999
        ring = [[lon + r * math.cos(2 * math.pi * k / vertices), lat + r * math.sin(2 * math.pi * k / vertices)] for k in range(vertices)]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def postal_prefixes(n: int) -> list[str]:
    # A district's prefix and a shorter one its neighbours share: the longest must win.
    return [f"{10000 + n}", f"{(10000 + n) // 10}"]


def zones_create(count: int, vertices: int) -> None:
    from dispatch.models import Zone

    Zone.objects.all().delete()
    Zone.objects.bulk_create(
        Zone(name=f"Zone {n:04d}", slug=f"zone-{n}", area=area(n, vertices), postal_code_prefixes=postal_prefixes(n)) for n in range(count)
    )


def lookups(count: int, case: str, rng: random.Random) -> list[tuple[float | None, float | None, str, str]]:
    """(lat, lon, postal code, expected zone slug) of ROUNDS drop-offs."""
    calls: list[tuple[float | None, float | None, str, str]] = []
    for _ in range(ROUNDS):
        n = rng.randrange(count)
        south, west, north, east = cell(n)
        if case == "no_zone":
            calls.append((SOUTH - 1.0, WEST - 1.0, f"{10000 + n}7", f"zone-{n}"))  # south of every zone
        else:
            # near the cell's centre, inside the inscribed polygon too
            lat = (south + north) / 2 + rng.uniform(-0.3, 0.3) * CELL_DEG
            lon = (west + east) / 2 + rng.uniform(-0.3, 0.3) * CELL_DEG
            calls.append((lat, lon, "", f"zone-{n}"))
    return calls


def timed(calls: list[tuple[float | None, float | None, str, str]]) -> tuple[list[float], int]:
    from dispatch.selectors import zone_for_dropoff

    latencies, errors = [], 0
    for lat, lon, postal_code, expected in calls:
        started = time.perf_counter()
        zone = zone_for_dropoff(lat, lon, postal_code)
        latencies.append(time.perf_counter() - started)
        errors += zone is None or zone.slug != expected
    return latencies, errors


def first_lookup_after_an_edit(calls: list[tuple[float | None, float | None, str, str]]) -> float:
    from django.db.models import F

    from dispatch.models import Zone
    from dispatch.selectors import zone_for_dropoff

    lat, lon, postal_code, _ = calls[0]
    Zone.objects.filter(slug="zone-0").update(offer_timeout_s=F("offer_timeout_s") + 1)  # any edit, by any process
    started = time.perf_counter()
    zone_for_dropoff(lat, lon, postal_code)
    return (time.perf_counter() - started) * 1000


def run() -> dict[str, Any]:
    prepare_database()
    cases = {"small_zones": 4, "zones_of_100_vertices": 100, "no_zone": 4}
    rows: dict[str, dict[str, Any]] = {}
    for case, vertices in cases.items():
        runs: dict[int, list[dict[str, Any]]] = {count: [] for count in COUNTS}
        for _ in range(REPEATS):
            for count in COUNTS:
                zones_create(count, vertices)
                calls = lookups(count, case, random.Random(count))
                timed(calls[:50])  # warm up: connection, this process's index
                latencies, errors = timed(calls)
                runs[count].append({**summarise(latencies), "errors": errors, "first_lookup_after_an_edit_ms": first_lookup_after_an_edit(calls)})
        rows[case] = {
            str(count): {
                "p50_ms": statistics.median(r["p50_ms"] for r in runs[count]),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs[count]),
                "first_lookup_after_an_edit_ms": statistics.median(r["first_lookup_after_an_edit_ms"] for r in runs[count]),
                "errors": sum(r["errors"] for r in runs[count]),
                "runs": runs[count],
            }
            for count in COUNTS
        }
        small, large = rows[case][str(COUNTS[0])], rows[case][str(COUNTS[-1])]
        rows[case]["ratio_p50"] = large["p50_ms"] / small["p50_ms"]
    worst = max(row["ratio_p50"] for row in rows.values())
    report: dict[str, Any] = {
        "benchmark": f"zone lookup of a drop-off, median of {REPEATS} p50s of {ROUNDS} calls, {COUNTS[0]} zones against {COUNTS[-1]}",
        "by_case": rows,
        "target": {"ratio_max": TARGET_RATIO, "worst_ratio": worst, "passed": worst <= TARGET_RATIO},
        "errors": {"errors": sum(row[str(c)]["errors"] for row in rows.values() for c in COUNTS)},
    }
    write_result("zone_lookup", report)
    print(f"zone lookup: median of {REPEATS} p50s of {ROUNDS} drop-offs")
    print(f"  {'case':24}{'zones':>7}{'p50 ms':>9}{'p99 ms':>9}{'after an edit ms':>18}{'errors':>8}")
    for case, row in rows.items():
        for count in COUNTS:
            r = row[str(count)]
            print(f"  {case:24}{count:>7}{r['p50_ms']:>9.3f}{r['p99_ms']:>9.3f}{r['first_lookup_after_an_edit_ms']:>18.2f}{r['errors']:>8}")
        print(f"  {'':24}{COUNTS[-1]} / {COUNTS[0]} zones: x{row['ratio_p50']:.2f}")
    verdict = "PASS" if report["target"]["passed"] else "FAIL"
    print(f"  worst ratio x{worst:.2f} (target <= x{TARGET_RATIO:.1f}: {verdict})")
    return report
