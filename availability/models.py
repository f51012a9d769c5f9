"""Drivers' presence that is not a column of the driver: the sockets their apps hold open."""

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
