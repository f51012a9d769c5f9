from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from dispatch import limits
from dispatch.models import Order, Zone


class AlertKind(models.TextChoices):
    """Everything that can page someone: the escalation triggers, then the SRE alerts of
    docs/alerts.yml. The ownership matrix routes each one to a team."""

    ORDER_UNASSIGNED = "order_unassigned", "Order unassigned too long"
    ORDER_NO_CANDIDATES = "order_no_candidates", "Order out of candidates"
    PICKUP_OVERDUE = "pickup_overdue", "Order assigned but not picked up in time"
    DELIVERY_OVERDUE = "delivery_overdue", "Order picked up but not delivered by its promised time"
    DRIVER_SILENT = "driver_silent", "Driver silent while holding orders"
    OFFERS_MISSED = "offers_missed", "Offer declined or expired too many times"
    REASSIGN_LIMIT = "reassign_limit", "Order reassigned too many times"
    ORDER_PREDICTED_LATE = "order_predicted_late", "Order predicted to arrive after its promised time"
    HANDOVER_CODE_FAILED = "handover_code_failed", "Wrong handover code entered too many times"
    SWEEP_LATE = "sweep_late", "A periodic sweep is late"
    SERVICE_NOT_READY = "service_not_ready", "The service is not ready"
    WEBHOOKS_FAILING = "webhooks_failing", "Shop webhooks are being refused"
    NOTIFIER_FAILING = "notifier_failing", "Escalation notifications are failing"
    ACCEPTANCE_LOW = "acceptance_low", "Drivers accept few offers"
    ORDERS_BACKLOG = "orders_backlog", "Many orders are waiting for a driver"


# The kinds an escalation of an order can have; the rest are alerts about the service.
TRIGGERS = (
    AlertKind.ORDER_UNASSIGNED,
    AlertKind.ORDER_NO_CANDIDATES,
    AlertKind.PICKUP_OVERDUE,
    AlertKind.DELIVERY_OVERDUE,
    AlertKind.DRIVER_SILENT,
    AlertKind.OFFERS_MISSED,
    AlertKind.REASSIGN_LIMIT,
    AlertKind.ORDER_PREDICTED_LATE,
    AlertKind.HANDOVER_CODE_FAILED,
)


class Team(models.Model):
    """People who own alerts: a zone's dispatchers, a zone lead, the on-call engineer."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NotificationChannel(models.Model):
    """Where a team is told. A team without an active channel is told through the log."""

    class Kind(models.TextChoices):
        LOG = "log", "Log line"
        EMAIL = "email", "Email (Django's mail backend)"
        SLACK = "slack", "Slack-compatible incoming webhook"
        WEBHOOK = "webhook", "Generic signed webhook"
        PAGERDUTY = "pagerduty", "PagerDuty Events API v2"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="channels")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.LOG)
    target = models.CharField(
        max_length=500,
        blank=True,
        help_text="Email: addresses separated by commas. Slack and webhook: the URL. PagerDuty: the integration's routing key. Log: nothing.",
    )
    secret = models.CharField(max_length=256, blank=True, help_text="Generic webhook: the shared secret of X-Dispatch-Signature")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["team__name", "kind"]

    def __str__(self) -> str:
        return f"{self.team}: {self.get_kind_display()}"

    def clean(self) -> None:
        from django.core.validators import URLValidator, validate_email

        target = self.target.strip()
        try:
            if self.kind == self.Kind.EMAIL:
                addresses = [a.strip() for a in target.split(",") if a.strip()]
                if not addresses:
                    raise ValidationError({"target": "Give at least one email address."})
                for address in addresses:
                    validate_email(address)
            elif self.kind in (self.Kind.SLACK, self.Kind.WEBHOOK):
                URLValidator(schemes=["http", "https"])(target)
                _check_outbound_url(target)
            elif self.kind == self.Kind.PAGERDUTY and not target:
                raise ValidationError({"target": "Give the PagerDuty integration's routing key."})
        except ValidationError as exc:
            raise ValidationError({"target": exc.messages}) from exc
        if self.kind == self.Kind.WEBHOOK and len(self.secret) < 16:
            raise ValidationError({"secret": "A signed webhook needs a secret of at least 16 characters."})


def _check_outbound_url(url: str) -> None:
    from dispatch.outbound import OutboundAddressRefused, outbound_url_check

    try:
        outbound_url_check(url, field="target")
    except OutboundAddressRefused as exc:
        raise ValidationError(exc.message) from exc


class AlertRoute(models.Model):
    """The ownership matrix: who owns each kind of alert. docs/ownership.md mirrors it."""

    alert = models.CharField(max_length=32, choices=AlertKind.choices, unique=True)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="routes")
    runbook = models.CharField(max_length=200, help_text="Path of the runbook in the repository, e.g. docs/runbooks/order-unassigned.md")

    class Meta:
        ordering = ["alert"]

    def __str__(self) -> str:
        return f"{self.get_alert_display()} → {self.team}"


class EscalationPolicy(models.Model):
    """A zone's limits and levels; the default policy covers zones without one of their own.

    A limit left empty takes the default from settings (ESCALATION_*), so the defaults can be
    changed for every zone at once and overridden for one zone.
    """

    LIMIT_FIELDS = (
        "unassigned_limit_s",
        "no_candidates_limit_s",
        "pickup_limit_s",
        "delivery_grace_s",
        "driver_silent_limit_s",
        "max_offer_misses",
        "max_reassignments",
        "predicted_late_grace_s",
    )

    zone = models.OneToOneField(Zone, on_delete=models.CASCADE, null=True, blank=True, related_name="escalation_policy")
    is_default = models.BooleanField(default=False, help_text="The policy of zones without one, and of orders outside every zone")
    unassigned_limit_s = models.PositiveIntegerField(
        validators=[MaxValueValidator(limits.DURATION_S_MAX)], null=True, blank=True, help_text="An order waiting for a driver this long escalates"
    )
    no_candidates_limit_s = models.PositiveIntegerField(
        validators=[MaxValueValidator(limits.DURATION_S_MAX)], null=True, blank=True, help_text="An order with no driver to offer it to for this long escalates"
    )
    pickup_limit_s = models.PositiveIntegerField(
        validators=[MaxValueValidator(limits.DURATION_S_MAX)],
        null=True,
        blank=True,
        help_text="An assigned order not picked up by then is reassigned (v2_auto_reassign) or escalates",
    )
    delivery_grace_s = models.PositiveIntegerField(
        validators=[MaxValueValidator(limits.DURATION_S_MAX)],
        null=True,
        blank=True,
        help_text="A picked-up order not delivered this long after its promised time escalates",
    )
    driver_silent_limit_s = models.PositiveIntegerField(
        validators=[MaxValueValidator(limits.DURATION_S_MAX)], null=True, blank=True, help_text="A driver holding orders and silent this long escalates them"
    )
    max_offer_misses = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(limits.COUNT_MAX)],
        help_text="An order declined or let lapse this many times escalates",
    )
    max_reassignments = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(20)], help_text="After this many automatic reassignments the order escalates instead"
    )
    predicted_late_grace_s = models.PositiveIntegerField(
        validators=[MaxValueValidator(limits.DURATION_S_MAX)],
        null=True,
        blank=True,
        help_text="An order whose arrival estimate is this long past its promised time escalates",
    )

    class Meta:
        verbose_name_plural = "escalation policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(is_default=True, zone__isnull=True) | Q(is_default=False, zone__isnull=False), name="policy_default_has_no_zone"
            ),
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="policy_one_default"),
        ]

    def __str__(self) -> str:
        return "Default policy" if self.is_default else f"Policy of {self.zone}"

    def limit(self, name: str) -> int:
        """The effective limit: this policy's own, or the default from settings."""
        value = getattr(self, name)
        return int(settings.ESCALATION_DEFAULTS[name] if value is None else value)


class EscalationLevel(models.Model):
    """Who is told at each level of a policy, and when the level is reached.

    Level 1 is told when the escalation opens; each next level when the previous one has not
    been acknowledged `after_s` seconds after the escalation opened.
    """

    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="levels")
    level = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(9)])
    after_s = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(limits.DURATION_S_MAX)], help_text="Seconds after opening; level 1 is always at 0"
    )
    team = models.ForeignKey(Team, on_delete=models.PROTECT, null=True, blank=True, help_text="Empty: the owner of the alert in the ownership matrix")

    class Meta:
        ordering = ["policy", "level"]
        constraints = [models.UniqueConstraint(fields=["policy", "level"], name="level_unique_per_policy")]

    def __str__(self) -> str:
        return f"L{self.level} at {self.after_s} s → {self.team or 'alert owner'}"

    def clean(self) -> None:
        if self.level == 1 and self.after_s != 0:
            raise ValidationError({"after_s": "Level 1 is told when the escalation opens: 0 seconds."})


class Escalation(models.Model):
    """An order that needs a person, for one reason (trigger), raised level by level.

    Opened once per order, trigger and episode (when the condition began): the unique
    constraint makes a second sweep's insert fail, so two beats never open it twice.
    """

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    UNRESOLVED_STATES = (State.OPEN, State.ACKNOWLEDGED)

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="escalations")
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, null=True, blank=True, related_name="escalations")
    trigger = models.CharField(max_length=32, choices=[(k.value, k.label) for k in TRIGGERS])
    episode_started_at = models.DateTimeField(help_text="When the condition began (e.g. when the order started waiting)")
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    level = models.PositiveSmallIntegerField(default=1)
    opened_at = models.DateTimeField()
    next_level_at = models.DateTimeField(null=True, blank=True, help_text="When the next level is told unless acknowledged")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)
    resolution = models.CharField(max_length=255, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["order", "trigger", "episode_started_at"], name="escalation_once_per_episode")]
        indexes = [
            # The level sweep: open escalations by the time of their next level, and nothing else.
            models.Index(fields=["next_level_at"], condition=Q(state="open"), name="escalation_next_level"),
            models.Index(fields=["state", "level"], condition=Q(state__in=["open", "acknowledged"]), name="escalation_unresolved"),
            models.Index(fields=["order", "state"], name="escalation_order_state"),
        ]

    def __str__(self) -> str:
        return f"escalation {self.pk}: {self.get_trigger_display()} (L{self.level}, {self.state})"


class Notification(models.Model):
    """One message about an escalation to one channel, sent after commit and retried with backoff.

    Its state is the record of delivery; the sweep resends what is due, so a message is not
    lost when the broker or a worker was down when it was made.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up)"

    class Event(models.TextChoices):
        OPENED = "opened", "Opened"
        RAISED = "raised", "Raised"
        RESOLVED = "resolved", "Resolved"

    escalation = models.ForeignKey(Escalation, on_delete=models.PROTECT, related_name="notifications")
    channel = models.ForeignKey(NotificationChannel, on_delete=models.SET_NULL, null=True, blank=True, help_text="Empty: the default log channel")
    channel_kind = models.CharField(max_length=16, choices=NotificationChannel.Kind.choices)
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True)
    event = models.CharField(max_length=16, choices=Event.choices)
    level = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(state="pending"), name="notification_due")]

    def __str__(self) -> str:
        return f"notification {self.pk}: {self.event} L{self.level} via {self.channel_kind} ({self.state})"
