"""What a Prometheus scrape reads: every process's events plus the database's state.

Kept apart from `observability.metrics` (the counters the services record), because reading
the state spans every app (orders, offers, escalations, sockets, sweeps), while the services
that record events sit on the ground floor and must not import the apps above them.
"""

import os
from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from observability.metrics import zone_label


class DispatchStateCollector:
    """Gauges read from the database at each scrape: the same answer from every process.

    Each family is one grouped query over an index (open orders by status, open escalations,
    drivers, offers answered in the last hour, sweep runs), never a scan of finished orders.
    """

    def collect(self) -> Iterator[Metric]:
        yield from self._orders()
        yield from self._offers_last_hour()
        yield from self._escalations()
        yield from self._drivers()
        yield from self._sweeps()

    def _orders(self) -> Iterator[Metric]:
        from dispatch.models import Order

        open_statuses = [*Order.WAITING_STATUSES, *Order.ACTIVE_STATUSES]
        by_status = GaugeMetricFamily("dispatch_orders", "Orders not yet finished, by zone and status", labels=["zone", "status"])
        share = GaugeMetricFamily("dispatch_orders_unassigned_ratio", "Share of unfinished orders still waiting for a driver", labels=["zone"])
        oldest = GaugeMetricFamily("dispatch_orders_oldest_waiting_seconds", "How long the oldest waiting order has waited", labels=["zone"])
        open_by_zone: dict[str, int] = {}
        waiting_by_zone: dict[str, int] = {}
        rows = Order.objects.filter(status__in=open_statuses).values("zone_id", "status").annotate(n=Count("id"), since=Min("status_changed_at"))
        now = timezone.now()
        oldest_by_zone: dict[str, float] = {}
        for row in rows:
            zone = zone_label(row["zone_id"])
            by_status.add_metric([zone, row["status"]], row["n"])
            open_by_zone[zone] = open_by_zone.get(zone, 0) + row["n"]
            if row["status"] in Order.WAITING_STATUSES:
                waiting_by_zone[zone] = waiting_by_zone.get(zone, 0) + row["n"]
                age = (now - row["since"]).total_seconds()
                oldest_by_zone[zone] = max(oldest_by_zone.get(zone, 0.0), age)
        for zone, total in sorted(open_by_zone.items()):
            share.add_metric([zone], waiting_by_zone.get(zone, 0) / total)
            oldest.add_metric([zone], oldest_by_zone.get(zone, 0.0))
        yield from (by_status, share, oldest)

    def _offers_last_hour(self) -> Iterator[Metric]:
        from offers.selectors import offer_answers_since

        ratio = GaugeMetricFamily("dispatch_offer_acceptance_ratio", "Accepted offers among those answered or lapsed in the last hour", labels=["zone"])
        for zone_id, counts in sorted(offer_answers_since(timezone.now() - timedelta(hours=1)).items(), key=lambda item: item[0] or 0):
            answered = sum(counts.values())
            if answered:
                ratio.add_metric([zone_label(zone_id)], counts.get("accepted", 0) / answered)
        yield ratio

    def _escalations(self) -> Iterator[Metric]:
        from escalation.selectors import open_escalation_counts

        family = GaugeMetricFamily("dispatch_escalations_open", "Escalations not yet resolved, by level and state", labels=["level", "state"])
        for (level, state), n in sorted(open_escalation_counts().items()):
            family.add_metric([str(level), state], n)
        yield family

    def _drivers(self) -> Iterator[Metric]:
        from dispatch.models import Driver

        by_availability = GaugeMetricFamily("dispatch_drivers", "Drivers by availability", labels=["availability"])
        counts = dict(Driver.objects.values_list("availability").annotate(n=Count("id")).values_list("availability", "n"))
        for availability in Driver.Availability.values:
            by_availability.add_metric([availability], counts.get(availability, 0))
        from availability.selectors import connected_sockets

        yield by_availability
        yield GaugeMetricFamily(
            "dispatch_driver_sockets_connected",
            "Open driver sockets (vouched for by their server within the presence timeout)",
            value=connected_sockets().count(),
        )

    def _sweeps(self) -> Iterator[Metric]:
        from observability.models import SweepRun

        lag = GaugeMetricFamily("dispatch_sweep_lag_seconds", "Time since each sweep last finished", labels=["sweep"])
        last = GaugeMetricFamily("dispatch_sweep_last_duration_seconds", "How long each sweep's last run took", labels=["sweep"])
        now = timezone.now()
        for run in SweepRun.objects.exclude(last_finished_at=None):
            lag.add_metric([run.name], (now - run.last_finished_at).total_seconds())  # type: ignore[operator]
            last.add_metric([run.name], run.last_duration_s or 0.0)
        yield from (lag, last)


class _ThisProcess:
    """The default registry's metrics, when the process is the only one (no multiprocess dir)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def metrics_exposition() -> bytes:
    """The text a Prometheus scrape gets: every process's events plus the database's state."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())  # type: ignore[arg-type]
    registry.register(DispatchStateCollector())  # type: ignore[arg-type]
    return generate_latest(registry)
