"""`make bench`: every benchmark in turn, each on a fresh scratch database; figures are
printed and written to bench/results/<name>.json. BENCH_ONLY=intake,offers picks some."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCHMARKS = [
    "intake",
    "frame_send",
    "offer_latency",
    "accept_race",
    "idle_sockets",
    "expiry_sweep",
    "escalation_sweep",
    "metrics_overhead",
    "audit_search",
    "zone_health_poll",
    "switch_read",
    "lifecycle",
    "decision_trace",
    "candidate_search",
    "zone_lookup",
    "scale_out",
    "tracking_watch",
]


def main() -> None:
    import importlib

    chosen = [b for b in os.environ.get("BENCH_ONLY", ",".join(BENCHMARKS)).split(",") if b]
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(BENCHMARKS)}")
    failed, missed = [], []
    for name in chosen:
        report = importlib.import_module(f"bench.{name}").run()
        if any(row.get("errors") for row in report.values() if isinstance(row, dict)):
            failed.append(name)
        if report.get("target", {}).get("passed") is False:  # a benchmark that states a target
            missed.append(name)
        print()
    if failed or missed:
        sys.exit("; ".join(([f"requests failed in: {', '.join(failed)}"] if failed else []) + ([f"targets missed in: {', '.join(missed)}"] if missed else [])))


if __name__ == "__main__":
    main()
