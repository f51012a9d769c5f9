from django.db import models


class SweepRun(models.Model):
    """When a periodic sweep last ran and how long it took.

    `/readyz` fails when a scheduled sweep has not finished within its interval (the beat or
    every worker is down), and `/metrics` reports the lag. Telemetry, so not audited.
    """

    name = models.CharField(max_length=100, unique=True, help_text="The Celery task name of the sweep")
    last_started_at = models.DateTimeField()
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_duration_s = models.FloatField(null=True, blank=True)
    last_result = models.IntegerField(null=True, blank=True, help_text="How many items the last run handled")
    last_error = models.TextField(blank=True)
    runs = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
