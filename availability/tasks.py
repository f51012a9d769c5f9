"""Celery entry points of availability's own services. The sweeps that take drivers offline or
end breaks, which move offers and orders on, are use cases: `usecases.tasks`."""

from availability import services
from observability.tasks import sweep_task


# Named as when the sweep lived in offers: the beat schedule and the periodic-task pages know it so.
@sweep_task("offers.drop_stale_sockets_due")
def drop_stale_sockets_due() -> int:
    return services.drop_stale_sockets_due()


@sweep_task("availability.position_history_delete_due")
def position_history_delete_due() -> int:
    return services.position_history_delete_due()
