"""Drivers' presence that is not a column of the driver: the sockets their apps hold open, and
the positions of drivers while they hold an order."""

from django.db import models

from dispatch.models import Driver


class DriverSocket(models.Model):
    """One open driver socket, vouched for by the server process that holds it.

    The row is written when the socket authenticates, its `seen_at` refreshed on the socket's
    credentials timer, and it is deleted when the socket closes. A server or Redis that dies
    leaves its rows behind: they stop counting once `seen_at` is older than
    DISPATCH_SOCKET_PRESENCE_TIMEOUT_S, and the sweep `drop_stale_sockets_due` deletes them.
    "Connected" is `availability.selectors.connected_sockets()`, nothing else. The table keeps
    the name it was created with in the offers app.
    """

    driver = models.ForeignKey(Driver, on_delete=models.CASCADE, related_name="sockets")
    channel_name = models.CharField(max_length=255, unique=True, help_text="The channel layer's name of the socket's consumer")
    opened_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        db_table = "offers_driversocket"
        indexes = [
            models.Index(fields=["driver", "seen_at"], name="driversocket_driver_seen"),
            models.Index(fields=["seen_at"], name="driversocket_seen"),  # the sweep, and the count for /metrics
        ]

    def __str__(self) -> str:
        return f"socket of driver {self.driver_id} since {self.opened_at:%Y-%m-%d %H:%M:%S}"


class PositionFix(models.Model):
    """Where a driver was while they held an order (assigned or picked up): the route of a
    delivery, for a dispute or an arrival estimate. A driver holding nothing has only their
    last position, on the driver's row. At most one fix a DISPATCH_POSITION_MIN_INTERVAL_S
    is kept; history older than DISPATCH_POSITION_RETENTION_DAYS is deleted by a sweep."""

    driver = models.ForeignKey(Driver, on_delete=models.CASCADE, related_name="position_fixes")
    lat = models.FloatField()
    lon = models.FloatField()
    accuracy_m = models.FloatField(null=True, blank=True, help_text="The phone's accuracy radius, when it said")
    recorded_at = models.DateTimeField(help_text="When the phone took the fix (never later than it arrived)")
    received_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["driver", "recorded_at"], name="positionfix_driver_recorded"),
            models.Index(fields=["received_at"], name="positionfix_received"),  # the retention sweep
        ]

    def __str__(self) -> str:
        return f"driver {self.driver_id} at {self.recorded_at:%Y-%m-%d %H:%M:%S}"
