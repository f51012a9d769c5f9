from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One state change, written in the same transaction as the change itself.

    Rows are never updated or deleted: on PostgreSQL, triggers installed by migration
    0002 refuse UPDATE, DELETE and TRUNCATE on this table.
    """

    class ActorKind(models.TextChoices):
        SYSTEM = "system", "System"
        DRIVER = "driver", "Driver"
        STAFF = "staff", "Staff user"
        SHOP = "shop", "Shop"

    occurred_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=64, help_text="Dotted past tense, e.g. order.assigned")
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    subject_type = models.CharField(max_length=32)
    subject_id = models.CharField(max_length=64)
    # Plain ids rather than foreign keys: the log must outlive and never block its subjects.
    order_id = models.BigIntegerField(null=True, blank=True)
    order_code = models.CharField(max_length=64, blank=True)
    driver_id = models.BigIntegerField(null=True, blank=True)
    zone_id = models.BigIntegerField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            # Support search: each filter leads an index and the time follows it, so a search
            # reads the rows it shows, newest first (proven by EXPLAIN in tests/audit).
            models.Index(fields=["order_id", "occurred_at"], name="audit_order_time"),
            models.Index(fields=["order_code", "occurred_at"], name="audit_order_code_time"),
            models.Index(fields=["driver_id", "occurred_at"], name="audit_driver_time"),
            models.Index(fields=["correlation_id", "occurred_at"], name="audit_correlation_time"),
            models.Index(fields=["kind", "occurred_at"], name="audit_kind_time"),
            models.Index(fields=["zone_id", "occurred_at"], name="audit_zone_time"),
            models.Index(fields=["actor_label", "occurred_at"], name="audit_actor_time"),
            models.Index(fields=["occurred_at"], name="audit_time"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.kind} {self.subject_type}:{self.subject_id}"
