"""Settings for the dispatch service, read from the environment (12-factor).

Every variable is listed in the README's configuration table. With neither DATABASE_URL
nor REDIS_URL set the service runs on its embedded default: SQLite, an in-process channel
layer and an in-process Celery broker (see `manage.py run_embedded`).
"""

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from django_guid.integrations import CeleryIntegration

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DISPATCH_VAR_DIR") or BASE_DIR / "var")

env = environ.Env()

DISPATCH_ENV = env.str("DISPATCH_ENV", default="development")
IS_PRODUCTION = DISPATCH_ENV == "production"

DEBUG = env.bool("DJANGO_DEBUG", default=not IS_PRODUCTION)
if IS_PRODUCTION:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-never-use-in-production-0123456789")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["*"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN
    "csp",
    "django_celery_beat",
    "waffle",
    "django_guid",
    "audit",
    "dispatch",
    "availability",
    "vendure",
    "rollout",
    "offers",
    "escalation",
    "observability",
    "tracking",
    "eta",
    "proof",
    "usecases",
]

MIDDLEWARE = [
    "audit.middleware.correlation_id_guard",
    "django_guid.middleware.guid_middleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "waffle.middleware.WaffleMiddleware",
]

ROOT_URLCONF = "dispatch.urls"
ASGI_APPLICATION = "dispatch.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

# --- Data ---------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
DATABASE_POOL_MAX = env.int("DATABASE_POOL_MAX", default=10)
# Parameters sent apart from the statement (PostgreSQL's extended protocol): psycopg no
# longer quotes every value into the text in Python (`BENCH_ONLY=lifecycle make bench`: an
# accept 3.6 -> 3.25 ms of CPU).
DATABASE_SERVER_SIDE_BINDING = env.bool("DATABASE_SERVER_SIDE_BINDING", default=True)
# A statement a connection has sent this many times is prepared: PostgreSQL parses it once
# and may keep its plan. The candidate search spent more time being planned than run
# (bench/expiry_sweep.py: 1,000 lapses 6.0 s -> 3.9 s). "off" behind a pooler that cannot
# keep prepared statements (PgBouncer in transaction mode before 1.21: docs/scaling.md).
_prepare_threshold = env.str("DATABASE_PREPARE_THRESHOLD", default="5").strip().lower()
DATABASE_PREPARE_THRESHOLD = None if _prepare_threshold in ("", "off", "none") else int(_prepare_threshold)
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options["server_side_binding"] = DATABASE_SERVER_SIDE_BINDING
        if DATABASE_SERVER_SIDE_BINDING:
            options["prepare_threshold"] = DATABASE_PREPARE_THRESHOLD
        if DATABASE_POOL_MAX:
            # psycopg's pool: a process reuses a few connections instead of opening one per
            # request or socket message (CONN_MAX_AGE stays 0, as the pool requires).
            options["pool"] = {"min_size": 1, "max_size": DATABASE_POOL_MAX, "timeout": 30}
else:
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "dispatch.sqlite3",
            # The embedded default serves HTTP, the task runner and beat from threads of one
            # process: IMMEDIATE transactions make writers queue instead of failing mid-way.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        }
    }
# ASGI processes must not keep connections per thread (they pile up on PostgreSQL).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
IS_EMBEDDED = not REDIS_URL
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", default=50)

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis with a pool that waits when full (see dispatch/channel_layers.py).
            "BACKEND": "dispatch.channel_layers.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s timeout by default; a process busy with a burst of
                # handshakes can take longer than that to get to a reply it already has.
                "hosts": [
                    {"address": REDIS_URL, "max_connections": REDIS_MAX_CONNECTIONS, "pool_timeout": 30, "socket_timeout": 30, "socket_connect_timeout": 10}
                ],
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# "default" is each process's own (short-lived figures a dashboard shares); "shared" is seen by
# every process (rate limits per client address, dispatch/ratelimit.py): Redis in production.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "dispatch", "TIMEOUT": 300}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "shared"}
    ),
}
# Sync code (views, tasks, sweeps) hands its messages to an outbox that one event loop per
# process sends in batches (dispatch/layer_outbox.py): a batch Redis has not taken after this
# long is given up and logged (the caller never waits for it), and an outbox holding this many
# messages drops new ones. A message is a hint; the database is the truth.
DISPATCH_LAYER_SEND_TIMEOUT_S = env.float("DISPATCH_LAYER_SEND_TIMEOUT_S", default=2.0)
DISPATCH_LAYER_OUTBOX_MAX = env.int("DISPATCH_LAYER_OUTBOX_MAX", default=10_000)

# --- Celery -------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# A task is acknowledged after it ran, and put back when its worker dies under it; every
# task is idempotent, and what must happen eventually is a row a sweep redoes anyway.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Redis hands an unacknowledged message to another worker after this long: longer than any
# task runs (the longest, a sweep, stops claiming work after a minute), so a slow task is
# never run twice at once; no task uses an ETA or countdown, so nothing waits on it as a timer.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_S", default=1800)}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# Workers log through Django's LOGGING (JSON lines with correlation ids), not Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Auth, i18n, static ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# htmx and Leaflet, installed from npm by `make assets` (bin/ensure-assets), served as ours.
STATICFILES_DIRS = [
    BASE_DIR / "static",  # the project's own scripts (no inline script: see the CSP below)
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/leaflet", BASE_DIR / "node_modules" / "leaflet" / "dist"),
]
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns on every request when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage" if IS_PRODUCTION else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
LOGIN_URL = "/admin/login/"

# --- API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["dispatch.authentication.DriverTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "dispatch.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Driver apps speak JSON only; forms would add ambiguous encodings (empty strings).
    "DEFAULT_PARSER_CLASSES": ["dispatch.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Dispatch service driver API",
    "DESCRIPTION": "REST API for driver apps. v1 is frozen: its schema is committed in docs/api/v1.yaml.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the drf-spectacular-sidecar package, so the docs work offline and under the CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge image fetched from validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# --- Correlation ids ----------------------------------------------------------------
DJANGO_GUID = {
    "GUID_HEADER_NAME": "X-Request-ID",
    # Callers (Vendure, proxies) send ids of their own shapes; keep whatever they send.
    "VALIDATE_GUID": False,
    "RETURN_HEADER": True,
    "INTEGRATIONS": [CeleryIntegration(use_django_logging=True, log_parent=True)],
}

# --- Dispatch rules -----------------------------------------------------------------
DISPATCH_WEBHOOK_TOLERANCE_S = env.int("DISPATCH_WEBHOOK_TOLERANCE_S", default=300)
DISPATCH_WEBHOOK_MAX_BODY_BYTES = env.int("DISPATCH_WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
DISPATCH_ASSIGN_SWEEP_BATCH = env.int("DISPATCH_ASSIGN_SWEEP_BATCH", default=200)
# The expiry sweep lapses at most this many offers a run, this many orders per transaction:
# each batch commits on its own, so the first orders are offered on while later ones wait.
DISPATCH_EXPIRY_SWEEP_LIMIT = env.int("DISPATCH_EXPIRY_SWEEP_LIMIT", default=5000)
DISPATCH_EXPIRY_SWEEP_BATCH = env.int("DISPATCH_EXPIRY_SWEEP_BATCH", default=50)
DISPATCH_POSITION_MAX_AGE_S = env.int("DISPATCH_POSITION_MAX_AGE_S", default=600)
DISPATCH_DEFAULT_PROMISE_MIN = env.int("DISPATCH_DEFAULT_PROMISE_MIN", default=60)
DISPATCH_V2_MIN_APP_VERSION = env.str("DISPATCH_V2_MIN_APP_VERSION", default="2.0.0")
DISPATCH_HEARTBEAT_TIMEOUT_S = env.int("DISPATCH_HEARTBEAT_TIMEOUT_S", default=90)
# A driver frame is JSON text of at most this many bytes (an error frame answers a larger one).
DISPATCH_SOCKET_MAX_FRAME_BYTES = 16 * 1024
# The ASGI server closes (1009) a socket message larger than this before reading it into
# memory: `--ws-max-size` of uvicorn (manage.py serve and the README's production command).
# Four times the frame limit leaves room for the frame's error answer to be the refusal.
DISPATCH_WS_MAX_MESSAGE_BYTES = 4 * DISPATCH_SOCKET_MAX_FRAME_BYTES
DISPATCH_SOCKET_AUTH_TIMEOUT_S = env.float("DISPATCH_SOCKET_AUTH_TIMEOUT_S", default=10.0)
# An open socket re-reads its token and user this often, and closes when either was revoked.
DISPATCH_SOCKET_CREDENTIALS_RECHECK_S = env.float("DISPATCH_SOCKET_CREDENTIALS_RECHECK_S", default=5.0)
# A socket's presence row not refreshed for this long (its server died) no longer counts.
DISPATCH_SOCKET_PRESENCE_TIMEOUT_S = env.int("DISPATCH_SOCKET_PRESENCE_TIMEOUT_S", default=30)
DISPATCH_MAX_SOCKETS_PER_DRIVER = env.int("DISPATCH_MAX_SOCKETS_PER_DRIVER", default=3)
# Frames a socket may send: this many a second on average, in bursts of up to the burst; a
# socket that keeps sending after that many refusals in a row is closed (4429).
DISPATCH_SOCKET_FRAMES_PER_S = env.float("DISPATCH_SOCKET_FRAMES_PER_S", default=10.0)
DISPATCH_SOCKET_FRAME_BURST = env.int("DISPATCH_SOCKET_FRAME_BURST", default=30)
DISPATCH_SOCKET_FLOOD_CLOSE_AFTER = env.int("DISPATCH_SOCKET_FLOOD_CLOSE_AFTER", default=100)
DISPATCH_MAX_BREAK_MIN = env.int("DISPATCH_MAX_BREAK_MIN", default=120)
DISPATCH_PUSH_BACKEND = env.str("DISPATCH_PUSH_BACKEND", default="offers.push.LogBackend")
DISPATCH_PUSH_WEBHOOK_URL = env.str("DISPATCH_PUSH_WEBHOOK_URL", default="")
DISPATCH_PUSH_WEBHOOK_SECRET = env.str("DISPATCH_PUSH_WEBHOOK_SECRET", default="")
DISPATCH_WEBPUSH_VAPID_PRIVATE_KEY = env.str("DISPATCH_WEBPUSH_VAPID_PRIVATE_KEY", default="")
DISPATCH_WEBPUSH_CONTACT = env.str("DISPATCH_WEBPUSH_CONTACT", default="mailto:ops@example.com")
# Networks the service may call although they are internal (loopback, private, link-local...):
# none by default, so a URL staff enter for a notifier, a shop or the push gateway can never
# make the server reach its own host, its network or the cloud's metadata service.
DISPATCH_OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network(n.strip()) for n in env.list("DISPATCH_OUTBOUND_ALLOWED_NETWORKS", default=[]) if n.strip()]
VENDURE_TIMEOUT_S = env.float("VENDURE_TIMEOUT_S", default=10.0)
VENDURE_REPORT_MAX_RETRIES = env.int("VENDURE_REPORT_MAX_RETRIES", default=15)
VENDURE_REPORT_BACKOFF_S = env.float("VENDURE_REPORT_BACKOFF_S", default=5.0)
VENDURE_REPORT_BACKOFF_MAX_S = env.float("VENDURE_REPORT_BACKOFF_MAX_S", default=600.0)
# Where people reach the service (links in escalation messages) and the runbooks.
# Drivers' positions (availability.PositionFix): at most one fix a driver kept in the history
# in this many seconds (the rest coalesced into the driver's row, not refused), and only while
# they hold an order; history older than the retention is deleted by a sweep; a fix whose
# accuracy radius is worse than the maximum is refused.
DISPATCH_POSITION_MIN_INTERVAL_S = env.float("DISPATCH_POSITION_MIN_INTERVAL_S", default=2.0)
DISPATCH_POSITION_RETENTION_DAYS = env.int("DISPATCH_POSITION_RETENTION_DAYS", default=30)
DISPATCH_POSITION_MAX_ACCURACY_M = env.float("DISPATCH_POSITION_MAX_ACCURACY_M", default=5000.0)
# Arrival estimates (eta/), built in: the straight line times the detour factor, over a speed
# per vehicle kind (metres a second; learned per zone from its deliveries of the last
# DISPATCH_ETA_LEARN_DAYS once it has DISPATCH_ETA_MIN_SAMPLES), plus handling at pickup and
# drop-off. The window is the 10th to 90th percentile of past errors; before there is data,
# the default spread (seconds, plus a share of the trip), never narrower than the minimum.
DISPATCH_ETA_DETOUR_FACTOR = env.float("DISPATCH_ETA_DETOUR_FACTOR", default=1.35)
DISPATCH_ETA_SPEED_MPS = {"on_foot": 1.3, "bicycle": 4.2, "scooter": 6.5, "car": 7.0, "van": 6.5}
DISPATCH_ETA_PICKUP_HANDLING_S = env.int("DISPATCH_ETA_PICKUP_HANDLING_S", default=180)
DISPATCH_ETA_DROPOFF_HANDLING_S = env.int("DISPATCH_ETA_DROPOFF_HANDLING_S", default=120)
DISPATCH_ETA_DEFAULT_SPREAD_S = env.int("DISPATCH_ETA_DEFAULT_SPREAD_S", default=300)
DISPATCH_ETA_DEFAULT_SPREAD_SHARE = env.float("DISPATCH_ETA_DEFAULT_SPREAD_SHARE", default=0.3)
DISPATCH_ETA_MIN_WINDOW_S = env.int("DISPATCH_ETA_MIN_WINDOW_S", default=300)
DISPATCH_ETA_MIN_SAMPLES = env.int("DISPATCH_ETA_MIN_SAMPLES", default=30)
DISPATCH_ETA_LEARN_DAYS = env.int("DISPATCH_ETA_LEARN_DAYS", default=28)
# A routing engine for arrival estimates (eta/routing.py): OSRM's HTTP API at this URL for
# every vehicle kind, or per kind ("bicycle=http://127.0.0.1:5001,foot=http://127.0.0.1:5002");
# empty: the built-in estimate only. Each call has this budget; an engine that failed is left
# alone this long by the process that saw it fail.
DISPATCH_ROUTING_KIND = env.str("DISPATCH_ROUTING_KIND", default="osrm")
if DISPATCH_ROUTING_KIND not in ("osrm", "valhalla"):
    raise ImproperlyConfigured(f"DISPATCH_ROUTING_KIND must be osrm or valhalla, not {DISPATCH_ROUTING_KIND!r}")
DISPATCH_ROUTING_URL = env.str("DISPATCH_ROUTING_URL", default="")
DISPATCH_ROUTING_URLS = {
    vehicle.strip(): url.strip() for vehicle, _, url in (item.partition("=") for item in env.list("DISPATCH_ROUTING_URLS", default=[])) if url.strip()
}
DISPATCH_ROUTING_TIMEOUT_MS = env.int("DISPATCH_ROUTING_TIMEOUT_MS", default=300)
DISPATCH_ROUTING_RETRY_S = env.float("DISPATCH_ROUTING_RETRY_S", default=10.0)
# How long a process uses the travel profiles it read before reading them again.
DISPATCH_ETA_PROFILE_CACHE_S = env.int("DISPATCH_ETA_PROFILE_CACHE_S", default=60)
# Proof of delivery (proof/): an uploaded image's largest size in bytes and pixels, and the
# longest side it is kept at (scaled down, re-encoded without metadata). Stored through
# STORAGES["default"]: files under MEDIA_ROOT here, or S3-compatible storage (README).
DISPATCH_PROOF_MAX_BYTES = env.int("DISPATCH_PROOF_MAX_BYTES", default=8 * 1024 * 1024)
DISPATCH_PROOF_MAX_PIXELS = env.int("DISPATCH_PROOF_MAX_PIXELS", default=40_000_000)
DISPATCH_PROOF_MAX_SIDE_PX = env.int("DISPATCH_PROOF_MAX_SIDE_PX", default=2048)
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")
# The largest request body the ASGI server reads (a proof photo and its form); a larger one is
# refused with 413 as it arrives, before Django would spool it to disk.
DISPATCH_MAX_REQUEST_BODY_BYTES = env.int("DISPATCH_MAX_REQUEST_BODY_BYTES", default=DISPATCH_PROOF_MAX_BYTES + 1024 * 1024)
# Wrong handover codes a driver may send before the order can only be resolved by ops (it escalates).
DISPATCH_HANDOVER_MAX_ATTEMPTS = env.int("DISPATCH_HANDOVER_MAX_ATTEMPTS", default=5)
# Tracking links (tracking/): how long a link works after its order ended; how old a driver's
# position may be before the page says "position not updated"; lookups per client address a
# minute, and lookups of unknown or dead links (guesses) a minute; the key tokens are made
# with (empty: derived from SECRET_KEY; changing it kills every link given out).
DISPATCH_TRACKING_LINK_TTL_H = env.int("DISPATCH_TRACKING_LINK_TTL_H", default=24)
DISPATCH_TRACKING_POSITION_STALE_S = env.int("DISPATCH_TRACKING_POSITION_STALE_S", default=120)
DISPATCH_TRACKING_LOOKUPS_PER_MINUTE = env.int("DISPATCH_TRACKING_LOOKUPS_PER_MINUTE", default=120)
DISPATCH_TRACKING_MISSES_PER_MINUTE = env.int("DISPATCH_TRACKING_MISSES_PER_MINUTE", default=20)
DISPATCH_TRACKING_KEY = env.str("DISPATCH_TRACKING_KEY", default="")
DISPATCH_TRACKING_POLL_S = env.int("DISPATCH_TRACKING_POLL_S", default=5)
DISPATCH_PUBLIC_URL = env.str("DISPATCH_PUBLIC_URL", default="http://127.0.0.1:8000")
# Empty: messages name the runbook's path in the repository (docs/runbooks/...).
DISPATCH_RUNBOOK_BASE_URL = env.str("DISPATCH_RUNBOOK_BASE_URL", default="")
DATA_UPLOAD_MAX_MEMORY_SIZE = max(DISPATCH_WEBHOOK_MAX_BODY_BYTES * 2, 2_621_440)

# --- Escalation ---------------------------------------------------------------------
# The limits of every zone without its own escalation policy (editable per zone in admin).
ESCALATION_DEFAULTS = {
    "unassigned_limit_s": env.int("ESCALATION_UNASSIGNED_LIMIT_S", default=300),
    "no_candidates_limit_s": env.int("ESCALATION_NO_CANDIDATES_LIMIT_S", default=120),
    "pickup_limit_s": env.int("ESCALATION_PICKUP_LIMIT_S", default=1200),
    "delivery_grace_s": env.int("ESCALATION_DELIVERY_GRACE_S", default=900),
    "driver_silent_limit_s": env.int("ESCALATION_DRIVER_SILENT_LIMIT_S", default=300),
    "max_offer_misses": env.int("ESCALATION_MAX_OFFER_MISSES", default=5),
    "max_reassignments": env.int("ESCALATION_MAX_REASSIGNMENTS", default=2),
    "predicted_late_grace_s": env.int("ESCALATION_PREDICTED_LATE_GRACE_S", default=300),
}
ESCALATION_MAX_EXTENSION_MIN = env.int("ESCALATION_MAX_EXTENSION_MIN", default=240)
ESCALATION_NOTIFIER_TIMEOUT_S = env.float("ESCALATION_NOTIFIER_TIMEOUT_S", default=5.0)
ESCALATION_NOTIFY_MAX_ATTEMPTS = env.int("ESCALATION_NOTIFY_MAX_ATTEMPTS", default=8)
ESCALATION_NOTIFY_BACKOFF_S = env.float("ESCALATION_NOTIFY_BACKOFF_S", default=5.0)
ESCALATION_NOTIFY_BACKOFF_MAX_S = env.float("ESCALATION_NOTIFY_BACKOFF_MAX_S", default=600.0)
PAGERDUTY_EVENTS_URL = env.str("PAGERDUTY_EVENTS_URL", default="https://events.pagerduty.com/v2/enqueue")
# Email for the email channel: EMAIL_URL (smtp://user:pass@host:587, consolemail://), console by default.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="dispatch@localhost")

# --- Logging ------------------------------------------------------------------------
# JSON lines by default, one object per line with the correlation id of the request, socket
# message or task, so one id finds every line of one order's story. DJANGO_LOG_FORMAT=plain
# gives lines for human eyes.
LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("DJANGO_LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"correlation_id": {"()": "django_guid.log_filters.CorrelationId"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
            "timestamp": False,
        },
        "plain": {"format": "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain" if LOG_FORMAT == "plain" else "json", "filters": ["correlation_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django_guid": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        # The in-process broker of the embedded default has no host name, and says so.
        "kombu.connection": {"level": "ERROR"},
        # A line per task run and per outgoing request drowns what matters; failures still log.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# --- Support pages ------------------------------------------------------------------
# An export is for a ticket, not a dump of the log: it stops after this many rows.
SUPPORT_EXPORT_MAX_ROWS = env.int("SUPPORT_EXPORT_MAX_ROWS", default=100_000)

# The zone page's map: Leaflet with these tiles; empty draws the zone and markers on a plain
# background (for machines without internet). Lists beside the map show the same rows.
DISPATCH_MAP_TILES_URL = env.str("DISPATCH_MAP_TILES_URL", default="https://tile.openstreetmap.org/{z}/{x}/{y}.png")
DISPATCH_MAP_TILES_ATTRIBUTION = env.str("DISPATCH_MAP_TILES_ATTRIBUTION", default="&copy; OpenStreetMap contributors")
# --- Content-Security-Policy (django-csp 4) ---------------------------------------------
# Every response carries it. Scripts come only from our own static files (or an inline script
# with the request's nonce): nothing a shop, driver or customer sends can run as script even if
# it reached a page unescaped. Inline styles stay allowed: templates and Leaflet use style
# attributes, and a style cannot run script. The map's tile server is the one outside origin.
_tiles = urlsplit(DISPATCH_MAP_TILES_URL)
MAP_TILES_ORIGIN = f"{_tiles.scheme}://{_tiles.netloc.replace('{s}', '*')}" if _tiles.scheme and _tiles.netloc else ""
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", *([MAP_TILES_ORIGIN] if MAP_TILES_ORIGIN else [])],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}
X_FRAME_OPTIONS = "DENY"  # the same for browsers that predate frame-ancestors

ZONE_PAGE_MAX_ROWS = env.int("ZONE_PAGE_MAX_ROWS", default=200)
# The dashboard's last-hour figures (acceptance, time to assign) are shared this long.
ZONE_HEALTH_LAST_HOUR_TTL_S = env.int("ZONE_HEALTH_LAST_HOUR_TTL_S", default=10)

# --- Observability ------------------------------------------------------------------
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
# /metrics answers a bearer token, or a scraper on an allowed network (never the public).
# In production no network is allowed unless METRICS_ALLOWED_IPS says so: behind a proxy on
# the same host that does not pass the client's address, every visitor looks like 127.0.0.1.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = [
    ipaddress.ip_network(n.strip()) for n in env.list("METRICS_ALLOWED_IPS", default=[] if IS_PRODUCTION else ["127.0.0.1/32", "::1/128"]) if n.strip()
]
READYZ_TIMEOUT_S = env.float("READYZ_TIMEOUT_S", default=1.0)
# A sweep is late when it has not finished for this many of its intervals, plus the grace.
READYZ_SWEEP_INTERVALS = env.int("READYZ_SWEEP_INTERVALS", default=3)
READYZ_SWEEP_GRACE_S = env.int("READYZ_SWEEP_GRACE_S", default=30)

# --- Production hardening (checked by `manage.py check --deploy`) -------------------
if IS_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
