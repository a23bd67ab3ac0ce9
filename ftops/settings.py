"""ftops settings, driven by environment variables.

Embedded default (nothing set): SQLite under ``var/`` and Celery tasks run in-process.
Production: ``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL`` (Redis).
Malformed values stop start-up with a message naming the variable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES

from ftops.common.env import SettingsError, env_bool, env_int, env_list, env_rate, env_str, env_url

# Nothing is downloaded at run time: the embedding model ships in a package and the base model
# is built here, so the Hugging Face hub stays off in every process that loads these settings
# (a model id a caller names must already be in the local cache; ftops.common.paths). An
# operator who wants the hub sets HF_HUB_OFFLINE=0 explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("FTOPS_VAR_DIR", str(BASE_DIR / "var")))
ARTIFACTS_DIR = Path(env_str("FTOPS_ARTIFACTS_DIR", str(VAR_DIR / "artifacts")))

DEBUG = env_bool("FTOPS_DEBUG", False)
_INSECURE_DEV_KEY = "ftops-dev-insecure-key-change-me-in-production-0123456789abcdef"
SECRET_KEY = env_str("FTOPS_SECRET_KEY", _INSECURE_DEV_KEY)
ALLOWED_HOSTS = env_list("FTOPS_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("FTOPS_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc assets, served from static/ (no CDN)
    "django_htmx",
    "template_partials",
    "ftops.common",
    "ftops.catalog",
    "ftops.interactions",
    "ftops.datasets",
    "ftops.training",
    "ftops.evaluation",
    "ftops.discovery",
    "review",
    "registry",
    "ftops.gateway",
    "ftops.modelserver",  # the model-server process (no models; core and common only)
    # The top floor: the continuous loop and the home dashboard read every app above.
    "ftops.loop",
    "ftops.reports",  # periodic alerts and reports: daily digest, stale queue, monthly report
    "ftops.home",
    "axes",  # locks out repeated wrong-password logins (its own tables and migrations)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Refuses NUL bytes in URLs and bad ?limit=/?offset= under /api/, and puts every /api/ error
    # in the JSON envelope: before the rest, so no later layer sees such a request.
    "ftops.common.middleware.RequestGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires: it answers a locked-out login
]

ROOT_URLCONF = "ftops.urls"
WSGI_APPLICATION = "ftops.wsgi.application"
ASGI_APPLICATION = "ftops.asgi.application"

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
                "ftops.common.nav.nav_items",
            ],
        },
    }
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'ftops.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except Exception as exc:  # dj_database_url raises several types for bad URLs
    raise RuntimeError(f"DATABASE_URL is malformed ({exc}); expected e.g. postgres://user@host:5432/db") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh checkout has no var/ (it is gitignored) and SQLite will not create folders.
    _sqlite_name = str(DATABASES["default"].get("NAME") or "")
    if _sqlite_name and _sqlite_name != ":memory:":
        Path(_sqlite_name).parent.mkdir(parents=True, exist_ok=True)
    # A busy timeout stops the demo server and in-process tasks tripping over each other.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes checks every login against the lockout first; ModelBackend then checks the password.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("FTOPS_STATIC_ROOT", str(VAR_DIR / "staticfiles")))

# --- security -------------------------------------------------------------------------
SECURE_PRODUCTION = env_bool("FTOPS_SECURE", False)
SESSION_COOKIE_SECURE = SECURE_PRODUCTION
CSRF_COOKIE_SECURE = SECURE_PRODUCTION
SECURE_SSL_REDIRECT = SECURE_PRODUCTION
SECURE_HSTS_SECONDS = 31536000 if SECURE_PRODUCTION else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_PRODUCTION
SECURE_HSTS_PRELOAD = SECURE_PRODUCTION
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_PRODUCTION else None
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
if SECURE_PRODUCTION and SECRET_KEY == _INSECURE_DEV_KEY:
    raise RuntimeError("FTOPS_SECURE=1 requires FTOPS_SECRET_KEY to be set to a long random value")

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "ftops.common.auth.ApiKeyAuthentication",
        "ftops.common.auth.CsrfAuditingSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "ftops.common.schema.ApiSchema",
    # DRF's JSONParser lets RecursionError through (a 500) on a body nested ~1,000 deep.
    "DEFAULT_PARSER_CLASSES": [
        "ftops.interactions.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["ftops.common.auth.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env_rate("FTOPS_API_KEY_RATE", "6000/min")},
    "EXCEPTION_HANDLER": "ftops.common.api_errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ftops API",
    "DESCRIPTION": "FT-Ops for LLM tool calling: ingest, catalog, curation, training, evaluation.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page loads its JS and CSS from our own static files: self-hosted installs
    # often cannot reach a CDN, and a CDN would see which internal hosts read the docs.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" with different choices; name each enum so the schema
    # (and `check --deploy`, which builds it) has no naming collisions.
    "ENUM_NAME_OVERRIDES": {
        "IngestBatchStatusEnum": "ftops.interactions.models.BatchStatus",
        "ReviewStatusEnum": "review.models.ReviewStatus",
        "ExampleStatusEnum": "ftops.datasets.models.ExampleStatus",
        "CurationRunStatusEnum": "ftops.datasets.models.RunStatus",
        "CurationRunKindEnum": "ftops.datasets.models.CurationRun.Kind",
        # Training and evaluation runs share one lifecycle, so one enum serves both.
        "RunStatusEnum": "ftops.training.models.RunStatus",
        "ModelVersionStatusEnum": "registry.models.VersionStatus",
    },
}

# --- cache (throttling, locks) -------------------------------------------------------
# Django's RedisCache hands the URL to redis-py, which knows these schemes.
REDIS_URL = env_url("REDIS_URL", "", schemes={"redis", "rediss", "unix"}, example="redis://host:6379/1")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -----------------------------------------------------------------------------
# Any transport kombu ships (redis://, rediss://, amqp://, memory:// ...); a typo would
# otherwise only surface when the first task is sent. ";" separates failover brokers.
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", "", schemes=set(TRANSPORT_ALIASES),
                            example="redis://host:6379/0", several=True)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "")
# No broker configured: tasks run in-process (embedded default, tests, demo).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue(name) for name in ("default", "ingestion", "curation", "evaluation", "training")]
CELERY_TASK_ROUTES = {
    "ftops.interactions.tasks.*": {"queue": "ingestion"},
    "ftops.datasets.tasks.*": {"queue": "curation"},
    "ftops.loop.tasks.*": {"queue": "curation"},  # the triggers embed failures, like curation does
    "ftops.evaluation.tasks.*": {"queue": "evaluation"},
    "ftops.training.tasks.*": {"queue": "training"},
}
# Durability for long GPU work lives in the database (lease + heartbeat + reaper); the
# broker's visibility timeout only has to outlast a normal run's acknowledgement delay.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("FTOPS_VISIBILITY_TIMEOUT_S", 4 * 3600, minimum=1),
    # A publish to an unreachable broker fails in well under a second instead of retrying for
    # ~6 s inside a web request: queued ingest answers 503 and its outbox sender retries later.
    "max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
    "socket_connect_timeout": 2,
}
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
# Curation: collect production examples, then hand the retraining triggers to the loop
# (ftops.loop.tasks.triggers_evaluate_task, sent by name once the collection committed).
CELERY_BEAT_SCHEDULE["curation-collect-and-triggers"] = {
    "task": "ftops.datasets.tasks.curation_scheduled",
    "schedule": 60.0 * env_int("FTOPS_CURATION_INTERVAL_MIN", 60, minimum=1),
    "options": {"queue": "curation"},
}

# Review: failures reach the queue shortly after ingest; abandoned claims return to it.
CELERY_BEAT_SCHEDULE["review-enqueue-failures"] = {
    "task": "review.tasks.enqueue_failures",
    "schedule": 60.0 * env_int("FTOPS_REVIEW_ENQUEUE_EVERY_MIN", 5, minimum=1),
}
CELERY_BEAT_SCHEDULE["review-release-expired-leases"] = {
    "task": "review.tasks.release_expired_leases",
    "schedule": 120.0,
}

# --- ftops ------------------------------------------------------------------------------
FTOPS_CONFIG_FILE = env_str("FTOPS_CONFIG_FILE", str(BASE_DIR / "ft_ops_config.yaml"))
FTOPS_PII_REDACTION = env_bool("FTOPS_PII_REDACTION", True)
FTOPS_REVIEW_LEASE_MINUTES = env_int("FTOPS_REVIEW_LEASE_MINUTES", 15, minimum=1)
# 0 would refuse every ingest request as "too large".
FTOPS_INGEST_MAX_BATCH = env_int("FTOPS_INGEST_MAX_BATCH", 1000, minimum=1)
# A full ingest batch (1,000 interactions with conversations) is several MB; Django's 2.5 MB
# default would refuse it before the API could say anything useful.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("FTOPS_MAX_REQUEST_MB", 32, minimum=1) * 1024 * 1024
# Feedback is 1-5: 0 means a score never marks a failure, 5 that every scored interaction is one.
FTOPS_FAILURE_FEEDBACK_MAX = env_int("FTOPS_FAILURE_FEEDBACK_MAX", 2, maximum=5)
FTOPS_BASE_MODEL = env_str("FTOPS_BASE_MODEL", str(VAR_DIR / "models" / "ftops-tiny-base"))
# Folders an API caller may point at for a base model or adapter, besides the artifacts folder
# and the base model's own folder (ftops.common.paths; rule 15). Comma-separated.
FTOPS_MODEL_ROOTS = env_list("FTOPS_MODEL_ROOTS", [])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("FTOPS_LOG_LEVEL", "WARNING")},
}

# PII types redacted at ingest (ftops.interactions.pii.PII_TYPES); FTOPS_PII_REDACTION=0 turns it all off.
FTOPS_PII_TYPES = env_list("FTOPS_PII_TYPES", ["email", "phone", "card", "iban", "ssn", "ip"])
_unknown_pii = sorted(set(FTOPS_PII_TYPES) - {"email", "phone", "card", "iban", "ssn", "ip"})
if _unknown_pii:
    raise SettingsError(f"FTOPS_PII_TYPES has unknown type(s) {_unknown_pii}; use email,phone,card,iban,ssn,ip")

# Share of review items (percent, 0-100) that two different reviewers must correct; their
# agreement on tool and arguments is recorded. Chosen deterministically per interaction.
FTOPS_REVIEW_DOUBLE_REVIEW_PERCENT = env_int("FTOPS_REVIEW_DOUBLE_REVIEW_PERCENT", 0, maximum=100)

# --- training (helper D) -------------------------------------------------------------
# A run's lease: heartbeats extend it; the reaper re-queues runs whose lease ran out.
FTOPS_TRAINING_LEASE_S = env_int("FTOPS_TRAINING_LEASE_S", 300, minimum=1)
FTOPS_TRAINING_REQUEUE_AFTER_S = env_int("FTOPS_TRAINING_REQUEUE_AFTER_S", 900, minimum=1)
CELERY_BEAT_SCHEDULE["training-reap-leases"] = {
    "task": "ftops.training.tasks.training_reap_task",
    "schedule": float(env_int("FTOPS_TRAINING_REAP_EVERY_S", 60, minimum=1)),
}
# Registry: model versions are named <enterprise>-<base model>-v<semver>.
FTOPS_ENTERPRISE_NAME = env_str("FTOPS_ENTERPRISE_NAME", "ftops")
# Registry: evaluations that finished while no registry task was watching are written back
# to their model versions (and gated); the registry task that runs them normally does it.
CELERY_BEAT_SCHEDULE["registry-collect-evaluations"] = {
    "task": "registry.tasks.model_versions_collect_evaluations",
    "schedule": 60.0,
}

# Covering indexes (INCLUDE columns) serve PostgreSQL; the embedded SQLite ignores the extra
# columns and still gets a usable index, so the warning says nothing actionable.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- authentication failures, lockouts and the API's guards (helper H4) -------------------
# API requests with no key, an unknown or a revoked key: past LIMIT failures per client
# address (or per key prefix) in a WINDOW, the answer is 429 with Retry-After; audit rows for
# them are aggregated per window (one row per address, prefix and reason, with a count).
FTOPS_AUTH_FAILURE_LIMIT = env_int("FTOPS_AUTH_FAILURE_LIMIT", 20, minimum=1)
FTOPS_AUTH_FAILURE_WINDOW_S = env_int("FTOPS_AUTH_FAILURE_WINDOW_S", 300, minimum=1)
# ?limit= on list endpoints: larger values get a 422 naming the bound.
FTOPS_API_MAX_PAGE_LIMIT = env_int("FTOPS_API_MAX_PAGE_LIMIT", 1000, minimum=1)
CSRF_FAILURE_VIEW = "ftops.common.views.csrf_failure"  # audits the refusal, then the usual 403
# Wrong-password logins (django-axes): after FTOPS_LOGIN_FAILURE_LIMIT failures for one user name
# from one address, that pair is locked out for FTOPS_LOGIN_COOLOFF_MIN minutes (429 page).
# A success resets the count. Reset by hand: `python manage.py axes_reset_username NAME`.
AXES_FAILURE_LIMIT = env_int("FTOPS_LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("FTOPS_LOGIN_COOLOFF_MIN", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "ftops.common.auth.AuditingAxesHandler"
AXES_CLIENT_IP_CALLABLE = "ftops.common.auth.client_ip"  # the same address the API's throttle counts
AXES_LOCKOUT_TEMPLATE = "auth/locked_out.html"
AXES_VERBOSE = False

# --- job runtime (ftops.common.jobs) and queued ingest --------------------------------
# Default lease of a job row; heartbeats extend it, the reaper re-queues a job whose lease ran out.
FTOPS_JOB_LEASE_S = env_int("FTOPS_JOB_LEASE_S", 300, minimum=1)
# Ingest batches take seconds, so a dead worker's batch is re-queued within about a minute.
FTOPS_INGEST_LEASE_S = env_int("FTOPS_INGEST_LEASE_S", 60, minimum=1)
# A pending batch published this long ago and still unclaimed is published again (a message
# prefetched by a worker that died waits for the broker's visibility timeout, hours).
FTOPS_INGEST_RESEND_AFTER_S = env_int("FTOPS_INGEST_RESEND_AFTER_S", 120, minimum=1)
# Retry-After (seconds) when a batch cannot be queued because the broker is unreachable.
FTOPS_INGEST_RETRY_AFTER_S = env_int("FTOPS_INGEST_RETRY_AFTER_S", 10, minimum=1)
CELERY_BEAT_SCHEDULE["interactions-reap-and-send-batches"] = {
    "task": "ftops.interactions.tasks.ingest_batches_reap",
    "schedule": float(env_int("FTOPS_INGEST_REAP_EVERY_S", 15, minimum=1)),
}

# --- outbound HTTP (helper H2) ------------------------------------------------------------
# Every server-side fetch (catalog URL imports, later aggregator and gateway upstreams) goes
# through ftops.common.outbound: public addresses only, unless this list names the host or a
# network holding the address, e.g. "127.0.0.1/32,10.20.0.0/16,mcp.internal.example".
from ftops.common.outbound import parse_allow_list as _parse_outbound_allow  # noqa: E402

FTOPS_OUTBOUND_ALLOW = env_list("FTOPS_OUTBOUND_ALLOW", [])
# /mcp/training-dataset and /mcp/test-dataset: requests per ML-orchestrator key per hour.
FTOPS_MCP_RATE_PER_HOUR = env_int("FTOPS_MCP_RATE_PER_HOUR", 100, minimum=1)
_parse_outbound_allow(FTOPS_OUTBOUND_ALLOW)  # a typo stops start-up here, not on the first import
# Total time for one fetch (resolve, connect, headers, whole body): well under gunicorn's 30 s.
FTOPS_OUTBOUND_TIMEOUT_S = env_int("FTOPS_OUTBOUND_TIMEOUT_S", 10, minimum=1, maximum=25)
FTOPS_OUTBOUND_MAX_BYTES = env_int("FTOPS_OUTBOUND_MAX_BYTES", 5 * 1024 * 1024, minimum=1024)
FTOPS_OUTBOUND_MAX_REDIRECTS = env_int("FTOPS_OUTBOUND_MAX_REDIRECTS", 5, maximum=20)
# URL imports run as jobs (ftops.catalog): their lease, and the beat pass that re-queues
# imports whose worker died and publishes those the broker never received.
FTOPS_CATALOG_IMPORT_LEASE_S = env_int("FTOPS_CATALOG_IMPORT_LEASE_S", 120, minimum=30)
CELERY_BEAT_SCHEDULE["catalog-reap-import-jobs"] = {
    "task": "ftops.catalog.tasks.catalog_import_jobs_reap_task",
    "schedule": 60.0,
}
# Curation runs, dataset builds and evaluation runs on the job runtime: their leases (heartbeats
# extend them) and the beat pass that re-queues what a dead worker left.
FTOPS_CURATION_LEASE_S = env_int("FTOPS_CURATION_LEASE_S", 300, minimum=1)
FTOPS_DATASET_BUILD_LEASE_S = env_int("FTOPS_DATASET_BUILD_LEASE_S", 300, minimum=1)
FTOPS_EVALUATION_LEASE_S = env_int("FTOPS_EVALUATION_LEASE_S", 300, minimum=1)
CELERY_BEAT_SCHEDULE["datasets-reap-jobs"] = {
    "task": "ftops.datasets.tasks.dataset_jobs_reap_task",
    "schedule": 60.0,
}
CELERY_BEAT_SCHEDULE["evaluation-reap-runs"] = {
    "task": "ftops.evaluation.tasks.eval_runs_reap_task",
    "schedule": 60.0,
}
# The embedded default has no beat: the served process (runserver, gunicorn, uvicorn) runs
# these reapers from a daemon thread every FTOPS_JOBS_REAP_EVERY_S (ftops.common.jobs).
# With a broker, the beat entries above send them instead.
FTOPS_JOB_REAPER_TASKS = [
    "ftops.interactions.tasks.ingest_batches_reap",
    "ftops.catalog.tasks.catalog_import_jobs_reap_task",
    "ftops.datasets.tasks.dataset_jobs_reap_task",
    "ftops.training.tasks.training_reap_task",
    "ftops.evaluation.tasks.eval_runs_reap_task",
    "ftops.loop.tasks.cycles_tick_task",  # improvement cycles: stage reaper, weekly schedule, triggers
]
CELERY_BEAT_SCHEDULE["loop-cycles-tick"] = {"task": "ftops.loop.tasks.cycles_tick_task", "schedule": 60.0}
# Alerts (ftops.reports): the stale review queue once a day, the daily digest (opt-in) after
# FTOPS_DIGEST_HOUR_UTC, last month's report once; each claimed per period, so ticking often is harmless.
FTOPS_DIGEST_HOUR_UTC = env_int("FTOPS_DIGEST_HOUR_UTC", 8, minimum=0, maximum=23)
FTOPS_REVIEW_STALE_HOURS = env_int("FTOPS_REVIEW_STALE_HOURS", 24, minimum=1)
FTOPS_JOB_REAPER_TASKS.append("ftops.reports.tasks.alerts_tick")
CELERY_BEAT_SCHEDULE["reports-alerts-tick"] = {"task": "ftops.reports.tasks.alerts_tick", "schedule": 300.0}
FTOPS_LOOP_POLL_S = env_int("FTOPS_LOOP_POLL_S", 30, minimum=1)
FTOPS_JOBS_SCHEDULER = env_bool("FTOPS_JOBS_SCHEDULER", True)
FTOPS_JOBS_REAP_EVERY_S = env_int("FTOPS_JOBS_REAP_EVERY_S", 30, minimum=1)

# --- notifications (email + optional webhook) and the MLflow mirror ------------------------
# Email goes through Django's mail backend: SMTP once EMAIL_HOST is set, the console (the
# process's stdout) in the embedded default, so a fresh machine shows what would be sent.
from django.core.exceptions import ValidationError as _ValidationError  # noqa: E402
from django.core.validators import validate_email as _validate_email  # noqa: E402


def _emails(name: str, values: list[str]) -> list[str]:
    for value in values:
        try:
            _validate_email(value)
        except _ValidationError:
            raise SettingsError(f"{name} entry {value!r} is not an email address; "
                                "give addresses separated by commas, e.g. a@example.com,b@example.com") from None
    return values


EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                        else "django.core.mail.backends.console.EmailBackend")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise SettingsError("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: STARTTLS (usually port 587) "
                        "or implicit TLS (usually port 465), not both")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1, maximum=120)
DEFAULT_FROM_EMAIL = _emails("DEFAULT_FROM_EMAIL", [env_str("DEFAULT_FROM_EMAIL", "ftops@localhost")])[0]
# Extra addresses beside the users holding the role (groups "approver" / "admin", staff).
FTOPS_NOTIFY_APPROVERS = _emails("FTOPS_NOTIFY_APPROVERS", env_list("FTOPS_NOTIFY_APPROVERS", []))
FTOPS_NOTIFY_ADMINS = _emails("FTOPS_NOTIFY_ADMINS", env_list("FTOPS_NOTIFY_ADMINS", []))
# service=address pairs, e.g. payments=pay-team@example.com,orders=orders@example.com
FTOPS_NOTIFY_SERVICE_OWNERS: dict[str, list[str]] = {}
for _pair in env_list("FTOPS_NOTIFY_SERVICE_OWNERS", []):
    _service, _sep, _address = _pair.partition("=")
    if not _sep or not _service.strip():
        raise SettingsError(f"FTOPS_NOTIFY_SERVICE_OWNERS entry {_pair!r} is not service=address; "
                            "e.g. payments=pay-team@example.com,orders=orders@example.com")
    FTOPS_NOTIFY_SERVICE_OWNERS.setdefault(_service.strip(), []).extend(
        _emails("FTOPS_NOTIFY_SERVICE_OWNERS", [_address.strip()]))
# Set by the operator only, never by an API caller; sent through the guarded outbound client,
# so a private receiver's host must be in FTOPS_OUTBOUND_ALLOW.
FTOPS_NOTIFY_WEBHOOK_URL = env_url("FTOPS_NOTIFY_WEBHOOK_URL", "", schemes={"http", "https"},
                                   example="https://hooks.slack.com/services/T000/B000/XXXX")
FTOPS_NOTIFY_MAX_RETRIES = env_int("FTOPS_NOTIFY_MAX_RETRIES", 5, maximum=20)

# When set, each model version is mirrored to this MLflow tracking server's model registry
# (needs the `mlflow` extra). ftops stays the source of truth.
MLFLOW_TRACKING_URI = env_url("MLFLOW_TRACKING_URI", "", schemes={"http", "https", "file", "sqlite", "databricks"},
                              example="http://mlflow.internal:5000")

# --- gateway (ftops.gateway: the OpenAI-compatible endpoint, its own uvicorn process) -------
FTOPS_GATEWAY_HOST = env_str("FTOPS_GATEWAY_HOST", "127.0.0.1")
FTOPS_GATEWAY_PORT = env_int("FTOPS_GATEWAY_PORT", 8100, minimum=1, maximum=65535)
FTOPS_GATEWAY_WORKERS = env_int("FTOPS_GATEWAY_WORKERS", 1, minimum=1, maximum=64)
# Per upstream call: total time, connect time, and how many more tries after a connection
# failure or a 5xx. FTOPS_GATEWAY_UPSTREAM_OPTIONS overrides them per credential name:
# "vllm:120:0,openai-prod:30:2" (name:timeout_s:retries).
FTOPS_GATEWAY_TIMEOUT_S = env_int("FTOPS_GATEWAY_TIMEOUT_S", 60, minimum=1, maximum=3600)
FTOPS_GATEWAY_CONNECT_TIMEOUT_S = env_int("FTOPS_GATEWAY_CONNECT_TIMEOUT_S", 5, minimum=1, maximum=120)
FTOPS_GATEWAY_RETRIES = env_int("FTOPS_GATEWAY_RETRIES", 1, maximum=10)
FTOPS_GATEWAY_UPSTREAM_OPTIONS: dict[str, tuple[int, int]] = {}
for _entry in env_list("FTOPS_GATEWAY_UPSTREAM_OPTIONS", []):
    _parts = _entry.split(":")
    if len(_parts) != 3 or not _parts[1].isdigit() or not _parts[2].isdigit() or int(_parts[1]) < 1:
        raise SettingsError(f"FTOPS_GATEWAY_UPSTREAM_OPTIONS entry {_entry!r} is not name:timeout_s:retries, "
                            "e.g. vllm:120:0")
    FTOPS_GATEWAY_UPSTREAM_OPTIONS[_parts[0]] = (int(_parts[1]), int(_parts[2]))
FTOPS_GATEWAY_MAX_CONNECTIONS = env_int("FTOPS_GATEWAY_MAX_CONNECTIONS", 200, minimum=1)
# Upstreams that take OpenAI's strict tool schemas ("strict": true on a function), used when a
# version's serving config says "constrained": true. By default only api.openai.com does; list
# others (Azure OpenAI, a proxy in front of OpenAI) or turn one off: "azure-prod:on,openai:off".
FTOPS_GATEWAY_STRICT_TOOLS: dict[str, bool] = {}
for _entry in env_list("FTOPS_GATEWAY_STRICT_TOOLS", []):
    _name, _, _flag = _entry.rpartition(":")
    if not _name or _flag not in ("on", "off"):
        raise SettingsError(f"FTOPS_GATEWAY_STRICT_TOOLS entry {_entry!r} is not name:on or name:off, "
                            "e.g. azure-prod:on")
    FTOPS_GATEWAY_STRICT_TOOLS[_name] = _flag == "on"
# Model versions served from a local base model with LoRA adapters (serving kind hf_lora) go
# to this OpenAI-compatible upstream (vLLM with --enable-lora, or ftops' model server), with
# the version's name as the model id.
FTOPS_GATEWAY_LORA_UPSTREAM = env_str("FTOPS_GATEWAY_LORA_UPSTREAM", "model-server")
# A failing canary upstream answers from production instead (the failure still counts against the canary).
FTOPS_GATEWAY_CANARY_FALLBACK = env_bool("FTOPS_GATEWAY_CANARY_FALLBACK", True)
# How long routes and API keys are cached: a promotion, rollback or key revocation is seen within it.
FTOPS_GATEWAY_CACHE_S = env_int("FTOPS_GATEWAY_CACHE_S", 5, minimum=0, maximum=300)
# Call logging: buffered in memory, written every FLUSH_MS or BATCH calls, spooled to
# SPOOL_DIR when the database is unreachable and replayed once it is back.
FTOPS_GATEWAY_FLUSH_MS = env_int("FTOPS_GATEWAY_FLUSH_MS", 500, minimum=10, maximum=60_000)
FTOPS_GATEWAY_BATCH = env_int("FTOPS_GATEWAY_BATCH", 500, minimum=1, maximum=1000)
FTOPS_GATEWAY_SPOOL_DIR = Path(env_str("FTOPS_GATEWAY_SPOOL_DIR", str(VAR_DIR / "gateway" / "spool")))
FTOPS_GATEWAY_MAX_BODY_MB = env_int("FTOPS_GATEWAY_MAX_BODY_MB", 8, minimum=1, maximum=256)

# --- model server (ftops.modelserver: `manage.py model-server`, a base model with LoRA adapters) ---
# OpenAI protocol plus vLLM's /v1/load_lora_adapter; register it as the credential named by
# FTOPS_GATEWAY_LORA_UPSTREAM with this key as its value. lora_path must lie under ADAPTERS_ROOT.
FTOPS_MODEL_SERVER_HOST = env_str("FTOPS_MODEL_SERVER_HOST", "127.0.0.1")
FTOPS_MODEL_SERVER_PORT = env_int("FTOPS_MODEL_SERVER_PORT", 8200, minimum=1, maximum=65535)
FTOPS_MODEL_SERVER_API_KEY = env_str("FTOPS_MODEL_SERVER_API_KEY", "")
FTOPS_MODEL_SERVER_BASE_MODEL = env_str("FTOPS_MODEL_SERVER_BASE_MODEL", FTOPS_BASE_MODEL)
FTOPS_MODEL_SERVER_ADAPTERS_ROOT = Path(env_str("FTOPS_MODEL_SERVER_ADAPTERS_ROOT", str(ARTIFACTS_DIR)))
FTOPS_MODEL_SERVER_MAX_BATCH = env_int("FTOPS_MODEL_SERVER_MAX_BATCH", 16, minimum=1, maximum=1024)
FTOPS_MODEL_SERVER_BATCH_WAIT_MS = env_int("FTOPS_MODEL_SERVER_BATCH_WAIT_MS", 5, minimum=0, maximum=1000)
FTOPS_MODEL_SERVER_MAX_ADAPTERS = env_int("FTOPS_MODEL_SERVER_MAX_ADAPTERS", 32, minimum=1, maximum=1024)
FTOPS_MODEL_SERVER_MAX_TOKENS = env_int("FTOPS_MODEL_SERVER_MAX_TOKENS", 512, minimum=1, maximum=32768)
# Schema-constrained tool calls by default (a request's "ftops_constrained" decides for itself).
FTOPS_MODEL_SERVER_CONSTRAINED = env_bool("FTOPS_MODEL_SERVER_CONSTRAINED", False)

# --- canaries (ftops.gateway.canary) ------------------------------------------------------
# Checked every minute on beat, and by the embedded scheduler with the reapers. A canary moves
# through FTOPS_CANARY_STAGES (shares of traffic; reaching 1.0 promotes it) when, with at least
# FTOPS_CANARY_MIN_SAMPLES requests on each arm, a one-sided non-inferiority test at
# FTOPS_CANARY_ALPHA says its error rate is below production's + FTOPS_CANARY_MARGIN; it is
# rolled back once FTOPS_CANARY_ROLLBACK_MIN_SAMPLES requests show its error rate surely over
# max_error_rate (ft_ops_config.yaml) or p95 over FTOPS_CANARY_MAX_P95_MS.
FTOPS_CANARY_STAGES = [float(s) for s in env_list("FTOPS_CANARY_STAGES", ["0.1", "0.5", "1.0"])]
if not FTOPS_CANARY_STAGES or any(not 0 < s <= 1 for s in FTOPS_CANARY_STAGES) or sorted(
        FTOPS_CANARY_STAGES) != FTOPS_CANARY_STAGES:
    raise SettingsError(f"FTOPS_CANARY_STAGES must be increasing shares in (0, 1], not {FTOPS_CANARY_STAGES}")
FTOPS_CANARY_MIN_SAMPLES = env_int("FTOPS_CANARY_MIN_SAMPLES", 200, minimum=1)
FTOPS_CANARY_ROLLBACK_MIN_SAMPLES = env_int("FTOPS_CANARY_ROLLBACK_MIN_SAMPLES", 20, minimum=1)
try:
    FTOPS_CANARY_ALPHA = float(env_str("FTOPS_CANARY_ALPHA", "0.05"))
    FTOPS_CANARY_MARGIN = float(env_str("FTOPS_CANARY_MARGIN", "0.02"))
except ValueError as _exc:
    raise SettingsError(f"FTOPS_CANARY_ALPHA / FTOPS_CANARY_MARGIN must be numbers: {_exc}") from None
if not 0 < FTOPS_CANARY_ALPHA < 0.5 or not 0 <= FTOPS_CANARY_MARGIN < 1:
    raise SettingsError("FTOPS_CANARY_ALPHA must lie in (0, 0.5) and FTOPS_CANARY_MARGIN in [0, 1)")
FTOPS_CANARY_MAX_P95_MS = env_int("FTOPS_CANARY_MAX_P95_MS", 2000, minimum=1)
# Automatic promotion and the canary's duration come from ft_ops_config.yaml's deployment section
# (auto_promote, canary_duration_hours); these, when set, override the file for every canary.
FTOPS_CANARY_AUTO_PROMOTE: bool | None = (env_bool("FTOPS_CANARY_AUTO_PROMOTE", False)
                                          if env_str("FTOPS_CANARY_AUTO_PROMOTE", "").strip() else None)
try:
    FTOPS_CANARY_DURATION_HOURS: float | None = (float(env_str("FTOPS_CANARY_DURATION_HOURS", ""))
                                                 if env_str("FTOPS_CANARY_DURATION_HOURS", "").strip() else None)
except ValueError as _exc:
    raise SettingsError(f"FTOPS_CANARY_DURATION_HOURS must be a number of hours: {_exc}") from None
if FTOPS_CANARY_DURATION_HOURS is not None and FTOPS_CANARY_DURATION_HOURS < 0:
    raise SettingsError("FTOPS_CANARY_DURATION_HOURS must be 0 or more")
FTOPS_JOB_REAPER_TASKS.append("ftops.gateway.tasks.canaries_check")
CELERY_BEAT_SCHEDULE["gateway-canaries-check"] = {"task": "ftops.gateway.tasks.canaries_check", "schedule": 60.0}
