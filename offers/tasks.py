"""Celery entry points of offers' own services (socket presence). The expiry sweep and the
switch-off, which move orders on, are use cases: `usecases.tasks`."""

from observability.tasks import sweep_task
from offers import services


@sweep_task("offers.drop_stale_sockets_due")
def drop_stale_sockets_due() -> int:
    return services.drop_stale_sockets_due()
