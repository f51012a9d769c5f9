import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from rest_framework.authtoken.models import TokenProxy

from dispatch import limits
from dispatch.geometry import area_contains, parse_area


def validate_finite(value: float) -> None:
    # Min/MaxValueValidator let NaN through: every comparison with NaN is false.
    if value is not None and not math.isfinite(value):
        raise ValidationError("Must be a finite number.")


LATITUDE: list[Callable[[Any], None]] = [validate_finite, MinValueValidator(-90), MaxValueValidator(90)]
LONGITUDE: list[Callable[[Any], None]] = [validate_finite, MinValueValidator(-180), MaxValueValidator(180)]


def validate_area(value: object) -> None:
    """A zone area dispatch can store and test every order against at a bounded cost."""
    if value is None:
        return
    # Walked before shapely sees it: a 100,000-vertex polygon is refused without being built.
    problem = limits.json_problem(value, max_depth=8, max_items=4 * limits.ZONE_AREA_MAX_VERTICES + 100)
    if problem:
        raise ValidationError(f"The zone area {problem}.")
    try:
        geometry = parse_area(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
    polygons = list(getattr(geometry, "geoms", [geometry]))
    if len(polygons) > limits.ZONE_AREA_MAX_POLYGONS:
        raise ValidationError(f"The zone area has {len(polygons)} polygons; at most {limits.ZONE_AREA_MAX_POLYGONS}.")
    vertices = sum(len(p.exterior.coords) + sum(len(ring.coords) for ring in p.interiors) for p in polygons)
    if vertices > limits.ZONE_AREA_MAX_VERTICES:
        raise ValidationError(f"The zone area has {vertices} vertices; at most {limits.ZONE_AREA_MAX_VERTICES}.")
    west, south, east, north = geometry.bounds
    if not (west >= -180 and east <= 180 and south >= -90 and north <= 90):
        raise ValidationError("The zone area's coordinates are [longitude, latitude]: longitude within -180..180, latitude within -90..90.")


def validate_postal_prefixes(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise ValidationError("postal code prefixes must be a list of non-empty strings")
    if len(value) > limits.ZONE_POSTAL_PREFIXES_MAX:
        raise ValidationError(f"at most {limits.ZONE_POSTAL_PREFIXES_MAX} postal code prefixes")
    for prefix in value:
        problem = limits.storable_text_problem(prefix)
        if problem or len(prefix) > limits.POSTAL_PREFIX_MAX_LENGTH:
            raise ValidationError(f"a postal code prefix is at most {limits.POSTAL_PREFIX_MAX_LENGTH} characters, with no NUL or lone surrogate")


class Zone(models.Model):
    """A delivery area: a GeoJSON polygon, postal-code prefixes, or both.

    A whole city can be one zone (one big polygon, or the city's postal prefixes). An order
    is placed by its drop-off coordinates when it has them, else by its postal code.
    """

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    area = models.JSONField(null=True, blank=True, validators=[validate_area], help_text="GeoJSON Polygon or MultiPolygon (longitude, latitude)")
    postal_code_prefixes = models.JSONField(default=list, blank=True, validators=[validate_postal_prefixes])
    offer_timeout_s = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(5), MaxValueValidator(600)], help_text="How long a driver has to answer an offer"
    )
    offer_fanout = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(20)], help_text="Drivers offered an order at once; the first to accept wins"
    )
    is_active = models.BooleanField(default=True)
    requires_handover_code = models.BooleanField(
        default=False, help_text="Orders here are handed over only against the code the customer sees on their tracking page"
    )
    # The zone's colour on the health dashboard: amber or red once its oldest waiting order has
    # waited this long, or this many orders wait.
    health_amber_wait_s = models.PositiveIntegerField(
        validators=[MaxValueValidator(limits.DURATION_S_MAX)], default=120, help_text="Amber when the oldest waiting order has waited this long"
    )
    health_red_wait_s = models.PositiveIntegerField(
        validators=[MaxValueValidator(limits.DURATION_S_MAX)], default=600, help_text="Red when the oldest waiting order has waited this long"
    )
    health_amber_waiting = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(limits.COUNT_MAX)], default=3, help_text="Amber when this many orders wait for a driver"
    )
    health_red_waiting = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(limits.COUNT_MAX)], default=10, help_text="Red when this many orders wait for a driver"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def contains_point(self, lat: float, lon: float) -> bool:
        return self.area is not None and area_contains(self.area, lat, lon)


class ZoneVersion(models.Model):
    """One row whose token the database replaces whenever a zone is inserted, changed or
    deleted: by admin, by a queryset update, by any process or by hand in SQL.

    Triggers keep it (migration 0013), so no write path can forget it. Each process builds
    its zone index (dispatch.zone_index) at a token and compares it with this row before
    every lookup: one primary-key read tells whether the index is still the zones' truth. A
    token is random, never a counter, so a rolled-back edit's token never comes back.
    """

    token = models.UUIDField()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="zone_version_single_row")]

    def __str__(self) -> str:
        return str(self.token)


# MinValueValidator and MaxValueValidator (not a function of our own): the frozen v1 schema
# shows their bounds.
DRIVER_CAPACITY_MESSAGE = f"A driver's capacity must be at least {limits.DRIVER_CAPACITY_MIN} and at most {limits.DRIVER_CAPACITY_MAX} orders."
DRIVER_CAPACITY = [
    MinValueValidator(limits.DRIVER_CAPACITY_MIN, message=DRIVER_CAPACITY_MESSAGE),
    MaxValueValidator(limits.DRIVER_CAPACITY_MAX, message=DRIVER_CAPACITY_MESSAGE),
]


class ShopChannel(models.Model):
    """A Vendure channel that sends orders: its token, webhook secret and pickup point."""

    token = models.CharField(max_length=128, unique=True, help_text="Vendure channel token (X-Dispatch-Channel)")
    name = models.CharField(max_length=100)
    webhook_secret = models.CharField(max_length=256, help_text="Shared secret for X-Dispatch-Signature")
    pickup_address = models.CharField(max_length=255, blank=True)
    pickup_lat = models.FloatField(validators=LATITUDE)
    pickup_lon = models.FloatField(validators=LONGITUDE)
    admin_api_url = models.URLField(blank=True, help_text="Vendure Admin API, e.g. https://shop.example/admin-api")
    admin_api_token = models.CharField(max_length=512, blank=True, help_text="Bearer token for the Admin API")
    is_active = models.BooleanField(default=True)
    requires_handover_code = models.BooleanField(
        default=False, help_text="This shop's orders are handed over only against the code the customer sees on their tracking page"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from dispatch.outbound import OutboundAddressRefused, outbound_url_check

        if self.admin_api_url:
            try:
                outbound_url_check(self.admin_api_url, field="admin_api_url")
            except OutboundAddressRefused as exc:
                raise ValidationError({"admin_api_url": exc.message}) from exc


class Driver(models.Model):
    """A courier. Holds at most `capacity` active orders; `active_order_count` is the lock.

    `active_order_count` is only changed by conditional UPDATEs in `dispatch.services`, and a
    database constraint keeps it within 0..capacity whatever the concurrency.
    """

    class Vehicle(models.TextChoices):
        BICYCLE = "bicycle", "Bicycle"
        SCOOTER = "scooter", "Scooter"
        CAR = "car", "Car"
        VAN = "van", "Van"
        ON_FOOT = "on_foot", "On foot"

    class Availability(models.TextChoices):
        OFFLINE = "offline", "Offline"
        AVAILABLE = "available", "Available"
        ON_BREAK = "on_break", "On a break"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="driver")
    name = models.CharField(max_length=limits.DRIVER_NAME_MAX_LENGTH, validators=[limits.validate_storable_text])
    phone = models.CharField(max_length=limits.DRIVER_PHONE_MAX_LENGTH, validators=[limits.validate_storable_text])
    vehicle = models.CharField(max_length=16, choices=Vehicle.choices, default=Vehicle.BICYCLE)
    zones = models.ManyToManyField(Zone, related_name="drivers", blank=True)
    capacity = models.PositiveSmallIntegerField(default=1, validators=DRIVER_CAPACITY)
    active_order_count = models.PositiveSmallIntegerField(default=0, editable=False)
    availability = models.CharField(max_length=16, choices=Availability.choices, default=Availability.OFFLINE)
    availability_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the driver last became free for work (came online or got their last order):
    # "idle longest" in candidate ranking is the oldest value here.
    idle_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_lat = models.FloatField(null=True, blank=True, validators=LATITUDE, editable=False)
    last_lon = models.FloatField(null=True, blank=True, validators=LONGITUDE, editable=False)
    last_position_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When a fix last went into the driver's position history (availability.PositionFix):
    # one a DISPATCH_POSITION_MIN_INTERVAL_S, the ones between coalesced into the row above.
    position_kept_at = models.DateTimeField(null=True, blank=True, editable=False)
    break_ends_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    push_subscription = models.JSONField(null=True, blank=True, help_text="Web Push subscription of the driver's app")
    app_version = models.CharField(max_length=32, blank=True, editable=False, help_text="Last X-App-Version the driver's app sent")
    v2_connected_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="Last time the app opened the v2 socket")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(active_order_count__lte=F("capacity")), name="driver_within_capacity"),
            models.CheckConstraint(condition=Q(capacity__gte=1), name="driver_capacity_positive"),
        ]
        indexes = [
            models.Index(fields=["availability", "idle_since"], name="driver_available_idle"),
            # The candidate search's boxes around a pickup (dispatch.selectors.candidate_drivers):
            # a latitude range, longitude checked in the index, for available drivers only.
            models.Index(fields=["last_lat", "last_lon"], condition=Q(availability="available"), name="driver_available_position"),
            # And "driver_available_idle_first" (idle_since ASC NULLS FIRST, id) for available
            # drivers, on PostgreSQL only (migration 0015; SQLite cannot write NULLS FIRST in an
            # index): the candidate search's drivers without a position, idle longest first,
            # read in this order until the limit, whatever the size of the fleet.
            # The sweeps: breaks that end, and drivers gone silent.
            models.Index(fields=["break_ends_at"], condition=Q(availability="on_break"), name="driver_break_end"),
            models.Index(fields=["last_heartbeat_at"], condition=~Q(availability="offline"), name="driver_heartbeat"),
        ]

    def __str__(self) -> str:
        return self.name

    # Free capacity and busy are derived, never stored; each is defined here once, for rows in
    # Python (the properties) and in SQL (the Q objects), and used everywhere.
    # "Has free capacity", in each form it is asked in, side by side: of an instance, in a
    # queryset, and in SQL text (`free_capacity_sql`: the capacity UPDATEs of every assignment
    # and the candidate search).

    @staticmethod
    def free_capacity_sql(alias: str = "") -> str:
        """The rule on a driver row in SQL text, its columns under `alias` when given."""
        prefix = f"{alias}." if alias else ""
        return f"{prefix}active_order_count < {prefix}capacity"

    @property
    def has_free_capacity(self) -> bool:
        return self.active_order_count < self.capacity

    @property
    def is_busy(self) -> bool:
        """Available but holding as many orders as they can carry."""
        return self.availability == self.Availability.AVAILABLE and not self.has_free_capacity

    @staticmethod
    def free_capacity_q() -> Q:
        return Q(active_order_count__lt=F("capacity"))

    @classmethod
    def busy_q(cls) -> Q:
        return Q(availability=cls.Availability.AVAILABLE) & ~cls.free_capacity_q()


class Order(models.Model):
    """A shop order to deliver, from its Vendure snapshot to delivery, cancellation or failure."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        UNASSIGNED = "unassigned", "Unassigned (waiting for a driver)"
        ASSIGNED = "assigned", "Assigned"
        PICKED_UP = "picked_up", "Picked up"
        DELIVERED = "delivered", "Delivered"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    ACTIVE_STATUSES = (Status.ASSIGNED, Status.PICKED_UP)
    WAITING_STATUSES = (Status.RECEIVED, Status.UNASSIGNED)
    TERMINAL_STATUSES = (Status.DELIVERED, Status.CANCELLED, Status.FAILED)
    # The cancel_reason of an order the shop cancelled (a webhook); tracking pages say who cancelled.
    SHOP_CANCEL_REASON = "cancelled by the shop"

    channel = models.ForeignKey(ShopChannel, on_delete=models.PROTECT, related_name="orders")
    vendure_order_id = models.CharField(max_length=64, help_text="Vendure's order id (a string)")
    code = models.CharField(max_length=64, help_text="Vendure's order code")
    vendure_state = models.CharField(max_length=64, blank=True)
    placed_at = models.DateTimeField(null=True, blank=True)
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, null=True, blank=True, related_name="orders")

    pickup_lat = models.FloatField(validators=LATITUDE)
    pickup_lon = models.FloatField(validators=LONGITUDE)
    dropoff_address = models.JSONField(default=dict, help_text="Vendure shippingAddress snapshot")
    dropoff_postal_code = models.CharField(max_length=32, blank=True)
    dropoff_lat = models.FloatField(null=True, blank=True, validators=LATITUDE)
    dropoff_lon = models.FloatField(null=True, blank=True, validators=LONGITUDE)
    customer_name = models.CharField(max_length=200, blank=True)
    customer_phone = models.CharField(max_length=64, blank=True)
    customer_email = models.CharField(max_length=254, blank=True)
    lines = models.JSONField(default=list, help_text="[{id, quantity, productVariant {id, name, sku}}]")
    item_summary = models.CharField(max_length=500, blank=True)
    total_minor = models.BigIntegerField(help_text="totalWithTax in minor units")
    delivery_fee_minor = models.BigIntegerField(help_text="shippingWithTax in minor units")
    currency = models.CharField(max_length=3)
    promised_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    status_changed_at = models.DateTimeField()
    waiting_reason = models.CharField(max_length=32, blank=True)
    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, null=True, blank=True, related_name="orders")
    received_at = models.DateTimeField()
    assigned_at = models.DateTimeField(null=True, blank=True)
    unassigned_at = models.DateTimeField(null=True, blank=True)
    picked_up_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=255, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)
    proof_note = models.CharField(max_length=1000, blank=True)
    proof_photo_ref = models.CharField(max_length=500, blank=True)
    # Set when dispatch last found nobody to offer the order to, cleared when it finds someone.
    out_of_candidates_at = models.DateTimeField(null=True, blank=True, editable=False)
    reassign_count = models.PositiveSmallIntegerField(default=0, editable=False, help_text="Automatic reassignments so far")
    limits_extended_until = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Ops gave the order more time: no reassignment or escalation before then"
    )

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "vendure_order_id"], name="order_unique_per_channel"),
            # An order held by a driver names them; a waiting or cancelled-before-pickup one does not.
            models.CheckConstraint(
                condition=~Q(status__in=["assigned", "picked_up"]) | Q(driver__isnull=False),
                name="order_active_has_driver",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["received", "unassigned"]) | Q(driver__isnull=True),
                name="order_waiting_has_no_driver",
            ),
        ]
        indexes = [
            # The assignment sweep: waiting orders, oldest first.
            models.Index(fields=["status", "received_at"], name="order_status_received"),
            models.Index(fields=["driver", "status"], name="order_driver_status"),
            models.Index(fields=["code"], name="order_code"),
            # The escalation and reassignment sweeps: one partial index per deadline they read,
            # so finished orders (nearly all of the table) are never looked at.
            models.Index(fields=["status_changed_at"], condition=Q(status__in=["received", "unassigned"]), name="order_waiting_since"),
            models.Index(
                fields=["out_of_candidates_at"],
                condition=Q(status__in=["received", "unassigned"], out_of_candidates_at__isnull=False),
                name="order_out_of_candidates",
            ),
            models.Index(fields=["assigned_at"], condition=Q(status="assigned"), name="order_awaiting_pickup"),
            models.Index(fields=["promised_at"], condition=Q(status="picked_up"), name="order_in_delivery"),
            # Time to assign over the last hour, per zone (zone health).
            models.Index(fields=["assigned_at"], name="order_assigned_at"),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.get_status_display()})"

    @property
    def reference(self) -> str:
        """Our reference, sent to the shop as the fulfillment's tracking code."""
        return f"DSP-{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @classmethod
    def frees_capacity(cls, before: str, after: str) -> bool:
        """Whether a move gives its driver a unit of capacity back: the order leaves the
        statuses in which a driver carries it (delivered, failed, cancelled, taken back)."""
        return before in cls.ACTIVE_STATUSES and after not in cls.ACTIVE_STATUSES

    @property
    def pickup_place(self) -> dict[str, object]:
        """Where the driver collects the order, as the driver APIs show it."""
        return {"address": self.channel.pickup_address or self.channel.name, "lat": self.pickup_lat, "lon": self.pickup_lon}

    @property
    def dropoff_place(self) -> dict[str, object]:
        """Where the order goes, as the driver APIs show it."""
        a = self.dropoff_address
        parts = [a.get("streetLine1"), a.get("streetLine2"), a.get("postalCode"), a.get("city")]
        return {"address": ", ".join(p for p in parts if p), "lat": self.dropoff_lat, "lon": self.dropoff_lon}


class Reassignment(models.Model):
    """An order taken back from its driver without them asking: automatically (gone offline
    or silent, not picked up in time) or by ops (unassigned, given to the next driver, or
    given by hand to someone else). The driver is not offered that order again."""

    class Reason(models.TextChoices):
        DRIVER_OFFLINE = "driver_offline", "The driver went offline"
        DRIVER_SILENT = "driver_silent", "The driver went silent"
        MISSED_PICKUP = "missed_pickup", "Not picked up in time"
        BY_OPS = "by_ops", "Reassigned by ops"
        UNASSIGNED_BY_OPS = "unassigned_by_ops", "Unassigned by ops"
        REASSIGNED_BY_OPS = "reassigned_by_ops", "Given by ops to another driver"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="reassignments")
    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="reassignments")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["order"], name="reassignment_order")]

    def __str__(self) -> str:
        return f"order {self.order_id} taken from driver {self.driver_id} ({self.reason})"

    # What the machine decided on its own: only these count towards a zone's limit of
    # automatic reassignments (ops moving an order is no sign the order is hard to place).
    AUTOMATIC_REASONS = frozenset({Reason.DRIVER_OFFLINE, Reason.DRIVER_SILENT, Reason.MISSED_PICKUP})

    @classmethod
    def audit_kind(cls, reason: str) -> str:
        """The audit kind of a take-back: `order.reassigned` when the order goes on to the next
        driver at once, `order.unassigned` when ops took it back to wait or to give by hand."""
        return "order.unassigned" if reason in (cls.Reason.UNASSIGNED_BY_OPS, cls.Reason.REASSIGNED_BY_OPS) else "order.reassigned"


class ApiToken(TokenProxy):
    """A user's API token (drivers' apps sign in with it) as the ops console lists it: named by
    its user, never by its key, which is the secret. DRF's own TokenProxy names it by its key,
    so the key would land in page titles, messages and the admin's action log."""

    class Meta:
        proxy = True
        verbose_name = "API token"
        verbose_name_plural = "API tokens"

    def __str__(self) -> str:
        return f"API token of {self.user}"
