"""One settings module, driven by environment variables (the healthchecks pattern).

Defaults give a working embedded setup: SQLite, no broker (Celery tasks run in-process). DEBUG is off
unless the environment turns it on (``./dev demo`` does); without DEBUG a ``SECRET_KEY`` is required, and
the test suite gets its own from ``[tool.pytest.ini_options] env`` in pyproject.toml.
``DATABASE_URL`` switches to PostgreSQL and ``CELERY_BROKER_URL``/``REDIS_URL`` to Redis and real
workers. A malformed value raises ``ImproperlyConfigured`` at start-up instead of misbehaving later.
"""

# Long on purpose: one module reads the whole environment, so docs/settings.md has one place to match.

from __future__ import annotations

import ipaddress as _ipaddress
import os
import re
from datetime import date as _date
from datetime import timedelta as _timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE as _CSP_NONCE
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from kombu import Exchange as _Exchange
from kombu import Queue as _Queue

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def envfloat(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from exc


def envstr(name: str, default: str) -> str:
    return os.environ.get(name, default)


def envlist(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# Off unless asked for: a deployment that forgets the variable must not serve tracebacks. `./dev demo`
# exports DEBUG=1; the tests run with DEBUG off (pytest-django forces it) like production.
DEBUG = envbool("DEBUG", False)
SECRET_KEY = envstr("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        # No silent fallback key outside DEBUG: sessions, password resets and signed values would be
        # forgeable by anyone who read this file. The tests set theirs in pyproject.toml (pytest-env).
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (a long random string; DEBUG=1 is for the demo only)"
        )
    SECRET_KEY = "insecure-demo-key-only-for-debug"  # noqa: S105 - demo only, refused when DEBUG is off

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "corsheaders",  # CORS for publishable keys (django-cors-headers; origins decided in shop_recs.api.cors)
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "shop_recs.stores",
    "shop_recs.platform",
    "shop_recs.api",
    "shop_recs.catalog",
    "shop_recs.activity",
    "shop_recs.imports",
    "shop_recs.recommend",  # migration history only (its models moved to training and serving)
    "shop_recs.training",
    "shop_recs.serving",
    "shop_recs.ads",
    "shop_recs.search",
    "analytics",
    "analytics.evaluation",
    "analytics.experiments",
    "shop_recs.dashboard",
    "csp",  # Content-Security-Policy header and nonces (django-csp)
    "axes",  # login throttling (django-axes): failed attempts per account and per IP address
]

MIDDLEWARE = [
    # First, to time each /api/v1/ request through the whole stack (Prometheus; not loaded with METRICS_ENABLED=0).
    "shop_recs.platform.metrics.MetricsMiddleware",
    # Before the rest: every response (even an HTTPS redirect) and every log line of the request carry its id.
    "shop_recs.platform.requestid.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Answers CORS preflights before anything else can (no key, no view), and adds Access-Control-*
    # headers to /api/v1/ answers (CORS settings below; which origin: shop_recs.api.cors).
    "corsheaders.middleware.CorsMiddleware",
    # Every /api/v1/ error in the JSON error shape (unknown paths, unhandled errors, NUL in the URL).
    "shop_recs.api.errors.ApiErrorMiddleware",
    # Per-key and per-address limits of /api/v1/, fast path included (not loaded when both limits are 0).
    "shop_recs.api.ratelimit.RateLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # shop_recs.api.browser_only: Django's session, user and message middleware and django-csp, each
    # passed by for /api/v1/ requests (API keys, no cookies): the same classes for every other path.
    "shop_recs.api.browser_only.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Django's own class: its deploy check (security.W003) looks for this exact path. For the API it
    # costs little (no cookie to read; the views are csrf_exempt).
    "django.middleware.csrf.CsrfViewMiddleware",
    "shop_recs.api.browser_only.AuthenticationMiddleware",
    "shop_recs.api.browser_only.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "shop_recs.platform.middleware.PrivatePagesMiddleware",
    # Styled 403/404/503 pages for what dashboard views raise, in DEBUG too (shop_recs.dashboard.errors).
    "shop_recs.dashboard.errors.DashboardErrorPagesMiddleware",
    # Content-Security-Policy on every response (django-csp): see CONTENT_SECURITY_POLICY below; on
    # /api/v1/ the constant shop_recs.api.browser_only.API_CONTENT_SECURITY_POLICY.
    "shop_recs.api.browser_only.CSPMiddleware",
    # Last, as django-axes asks: answers a locked-out login with its lockout page (HTTP 429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "shop_recs.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop_recs.stores.context_processors.current_store",
            ],
        },
    },
]

WSGI_APPLICATION = "shop_recs.wsgi.application"

# --- Database -------------------------------------------------------------------------------
VAR_DIR = Path(envstr("SHOP_RECS_VAR_DIR", str(BASE_DIR / "var")))
DATABASE_URL = envstr("DATABASE_URL", "")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 60))}
    except Exception as exc:  # dj_database_url raises several types for a bad URL
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": envstr("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # A generous timeout because in-process Celery tasks and the dev server share the file.
            "OPTIONS": {"timeout": 30},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery ----------------------------------------------------------------------
REDIS_URL = envstr("REDIS_URL", "")
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", REDIS_URL)
# No broker means the embedded mode: tasks run in the calling process (a web process hands the jobs
# its pages start to its background pool below; commands, shells and tests run them synchronously).
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
# Embedded mode only (eager, no broker): a web process runs jobs it starts on this many background
# threads after the response is sent (shop_recs.platform.executor); 0 = run them inside the request.
JOB_EXECUTOR_THREADS = envint("JOB_EXECUTOR_THREADS", 2)
# Chords (parallel tuning trials) need a result backend; the dashboard itself polls run rows.
CELERY_RESULT_BACKEND = envstr("CELERY_RESULT_BACKEND", REDIS_URL) or None
CELERY_RESULT_EXPIRES = envint("CELERY_RESULT_EXPIRES", 3600)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 60 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 55 * 60)
CELERY_TIMEZONE = "UTC"
# Two queues (docs/operations.md, "Queues"): training, evaluation and tuning go to CELERY_HEAVY_QUEUE,
# everything else to CELERY_QUEUE, so a long training run never holds up attribution or imports.
# The router (shop_recs.celery.route_task) names every task of the project explicitly.
CELERY_TASK_DEFAULT_QUEUE = envstr("CELERY_QUEUE", "default")
CELERY_HEAVY_QUEUE = envstr("CELERY_HEAVY_QUEUE", "heavy")
CELERY_TASK_ROUTES = ("shop_recs.celery.route_task",)
# What a worker started without -Q consumes: both queues (a small installation's single worker).
CELERY_TASK_QUEUES = tuple(
    _Queue(name, _Exchange(name), routing_key=name) for name in (CELERY_TASK_DEFAULT_QUEUE, CELERY_HEAVY_QUEUE)
)
# Redis redelivers an unacknowledged (acks_late) task after the visibility timeout; keep it above the
# longest hard time limit so a long training run is not handed to a second worker while it runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 2 * 60 * 60)}
# Periodic jobs (docs/operations.md, "Periodic jobs"): how often beat sends each one, in seconds.
# Every run is recorded (shop_recs.platform.periodic) and the Jobs page flags one older than 2 intervals.
ATTRIBUTION_INTERVAL_SECONDS = envint("ATTRIBUTION_INTERVAL_SECONDS", 300)
CAMPAIGN_UPKEEP_INTERVAL_SECONDS = envint("CAMPAIGN_UPKEEP_INTERVAL_SECONDS", 600)
STALE_JOB_SWEEP_INTERVAL_SECONDS = envint("STALE_JOB_SWEEP_INTERVAL_SECONDS", 300)
# How often beat looks for stores whose profiles are due; each store's cadence is PROFILE_REFRESH_HOURS
# unless its StorePeriodicSettings says otherwise (0 = never).
PROFILE_REFRESH_CHECK_SECONDS = envint("PROFILE_REFRESH_CHECK_SECONDS", 900)
PROFILE_REFRESH_HOURS = envint("PROFILE_REFRESH_HOURS", 24)
# The Overview (landing page) reads precomputed snapshots (shop_recs.dashboard.overview_snapshots): beat
# recomputes those of stores with new events every OVERVIEW_REFRESH_SECONDS; the page serves a snapshot up
# to OVERVIEW_MAX_STALENESS_SECONDS old even if events arrived since, and computes it itself beyond that.
OVERVIEW_REFRESH_SECONDS = envint("OVERVIEW_REFRESH_SECONDS", 60)
OVERVIEW_MAX_STALENESS_SECONDS = envint("OVERVIEW_MAX_STALENESS_SECONDS", 300)
IDEMPOTENCY_PURGE_INTERVAL_SECONDS = envint("IDEMPOTENCY_PURGE_INTERVAL_SECONDS", 3600)
# Periodic run records older than this are deleted by the stale-job sweep (each job's latest is kept).
PERIODIC_RUN_RETENTION_DAYS = envint("PERIODIC_RUN_RETENTION_DAYS", 14)
# Served lists, search queries and their attributions older than this many days are deleted daily
# (analytics.retention); 0 keeps them forever. At least 30: the online metrics page reads 30 days.
LOG_RETENTION_DAYS = envint("LOG_RETENTION_DAYS", 0)
if 0 < LOG_RETENTION_DAYS < 30:
    raise ImproperlyConfigured(f"LOG_RETENTION_DAYS={LOG_RETENTION_DAYS} must be 0 (keep forever) or at least 30")
LOG_PURGE_INTERVAL_SECONDS = envint("LOG_PURGE_INTERVAL_SECONDS", 24 * 3600)
CELERY_BEAT_SCHEDULE = {
    "purge-idempotency-records": {
        "task": "shop_recs.api.tasks.purge_idempotency_records",
        "schedule": float(IDEMPOTENCY_PURGE_INTERVAL_SECONDS),
    },
    # Scheduled retraining: every few minutes, start a run for each store whose TrainingSchedule is due.
    "enqueue-due-trainings": {
        "task": "shop_recs.training.tasks.enqueue_due_trainings",
        "schedule": float(envint("TRAINING_SCHEDULE_TICK_SECONDS", 300)),
    },
    # Credit new clicks, carts and purchases to served lists: experiment results and online metrics.
    "attribute-events": {
        "task": "analytics.experiments.tasks.attribute_all_stores_task",
        "schedule": float(ATTRIBUTION_INTERVAL_SECONDS),
    },
    # End campaigns past their end date or with their budget spent; drop old frequency counters.
    "campaign-upkeep": {
        "task": "shop_recs.ads.tasks.campaign_upkeep_task",
        "schedule": float(CAMPAIGN_UPKEEP_INTERVAL_SECONDS),
    },
    # Fail job rows of every kind whose worker died; prune old periodic run records.
    "sweep-stale-jobs": {
        "task": "shop_recs.platform.tasks.sweep_stale_jobs_task",
        "schedule": float(STALE_JOB_SWEEP_INTERVAL_SECONDS),
    },
    # Start a profile (and segment) refresh for every store whose cadence has passed.
    "refresh-due-profiles": {
        "task": "analytics.tasks.refresh_due_profiles_task",
        "schedule": float(PROFILE_REFRESH_CHECK_SECONDS),
    },
    # Recompute the Overview snapshots of stores that have had events since their last ones.
    "refresh-overviews": {
        "task": "shop_recs.dashboard.tasks.refresh_overviews_task",
        "schedule": float(OVERVIEW_REFRESH_SECONDS),
    },
    # Delete served-list, search and attribution rows older than LOG_RETENTION_DAYS (0: keeps all).
    "purge-old-logs": {
        "task": "analytics.tasks.purge_old_logs_task",
        "schedule": float(LOG_PURGE_INTERVAL_SECONDS),
    },
}

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # Short socket timeouts: with Redis down, a cache call fails in well under a second and
            # shop_recs.platform.cache falls back (no cache), instead of hanging a web request.
            "OPTIONS": {
                "socket_connect_timeout": float(envint("REDIS_CONNECT_TIMEOUT_MS", 250)) / 1000,
                "socket_timeout": float(envint("REDIS_SOCKET_TIMEOUT_MS", 500)) / 1000,
                "retry_on_timeout": False,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth, i18n, static ----------------------------------------------------------------------
AUTH_USER_MODEL = "auth.User"  # Django's default, declared because models and migrations read it
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Content-Security-Policy (django-csp): scripts only from this site or inline with the request's nonce
# (templates write <script nonce="{{ request.csp_nonce }}">); no inline event handlers. Styles allow
# 'unsafe-inline' because plotly.js injects <style> elements. Images may come from the shops' own
# hosts (product and ad images are https URLs the merchant gives). The API docs pages are exempt
# (their vendored Swagger UI and ReDoc pages use inline scripts).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", _CSP_NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "https:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
LOGIN_URL = "login"
# Login throttling (django-axes, the dashboard and the admin): LOGIN_FAILURE_LIMIT wrong passwords for
# one account, or from one IP address, pause sign-in for LOGIN_COOLOFF_MINUTES. Attempts are kept in
# the database, so every web process and replica sees the same count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = _timedelta(minutes=envint("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "shop_recs.stores.views.locked_out"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
# The language switch's cookie; a store's own language applies only to members without it (stores.access).
LANGUAGE_COOKIE_NAME = "django_language"
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Project overrides of Django's locale formats: zh-Hans groups digits by three with a comma (71,465)
# where Django's own zh_Hans module has no separator (docs/settings.md).
FORMAT_MODULE_PATH = ["shop_recs.dashboard.formats"]

STATIC_URL = "static/"
# The address this site is reached at from a browser. The demo's product images are this site's own
# static files, and an image URL in the catalog must be absolute http(s) (catalog/validation.py).
SITE_URL = envstr("SITE_URL", "http://localhost:8000").rstrip("/")
if not SITE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"SITE_URL must start with http:// or https:// (got {SITE_URL!r})")
# Where `manage.py collectstatic --noinput` (a deployment step, docs/operations.md) writes the files.
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.min.js straight from the installed plotly wheel (no CDN), and nothing else of that package.
    "shop_recs.platform.staticfinders.PackageFileFinder",
]
# Production (DEBUG off): collected files with content hashes in their names (plotly.min.<hash>.js),
# pre-compressed (.gz) by WhiteNoise at collectstatic time. WhiteNoise serves a hashed name with a
# ten-year `Cache-Control: max-age=315360000, public, immutable` (its immutable-file test recognises
# the manifest's names), other files with WHITENOISE_MAX_AGE (60 s). Pages fail loudly (manifest_strict)
# if a template names a file that was not collected.
# With DEBUG, and in the test suite (STATICFILES_MANIFEST=0 in pyproject.toml), plain names are served
# straight from the finders instead: nothing to collect first, and the live-server of the browser tests
# (Django's StaticFilesHandler, which only knows the finders) can serve them. tests/test_static_files.py
# runs a real collectstatic to cover the production storage.
STATICFILES_MANIFEST = envbool("STATICFILES_MANIFEST", not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if STATICFILES_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Serve from the finders only without the manifest: in production WhiteNoise serves STATIC_ROOT alone
# (scanned once at start-up; an unhashed original would otherwise be served too).
WHITENOISE_USE_FINDERS = not STATICFILES_MANIFEST
MEDIA_ROOT = VAR_DIR / "media"
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", 50 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["shop_recs.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["shop_recs.api.auth.HasStoreApiKey"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "shop_recs.api.params.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["shop_recs.api.params.StrictJSONParser"],
    "EXCEPTION_HANDLER": "shop_recs.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "shop_recs API",
    "DESCRIPTION": """REST API v1 for shop frontends: catalog and event ingestion, recommendations.

Authenticate with `Authorization: Bearer <store API key>` (`X-Api-Key: <key>` works too). Two kinds of key:

* **Secret** (`sr_…`): for your servers; every operation. Never put it in a web page.
* **Publishable** (`pk_…`): for web pages; only the storefront operations (recommendations, similar, frequently
  bought together, popular, trending, search, ads, an ad click, single events), and from a browser only on the
  key's allowed origins (CORS). Anything else answers `403 key_not_allowed`; another origin `403 origin_not_allowed`.

From a server:

```bash
curl "https://recs.example.com/api/v1/recommendations/customer/c-42?n=8&placement=home" \
  -H "Authorization: Bearer sr_1a2b3c4d_..."
```

From a shop page (publishable key; the page's origin must be one of the key's allowed origins):

```js
const res = await fetch("https://recs.example.com/api/v1/recommendations/customer/c-42?n=8", {
  headers: {Authorization: "Bearer pk_5e6f7a8b_..."},
});
const {list_id, items} = await res.json();
// later, on a click: send list_id back so the click is attributed to the list
await fetch("https://recs.example.com/api/v1/events", {
  method: "POST",
  headers: {Authorization: "Bearer pk_5e6f7a8b_...", "Content-Type": "application/json"},
  body: JSON.stringify({customer: "c-42", type: "click", sku: items[0].sku,
                        timestamp: new Date().toISOString(), context: {list_id}}),
});
```

Or embed the ready-made widget: `static/shop_recs/widget.js` (docs/api.md, "Storefront widget").""",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc assets come from drf-spectacular-sidecar (local static), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# CORS (django-cors-headers) for publishable keys called from shop pages (docs/api.md, "CORS"). No static
# origin list: a preflight is allowed for the origins some active publishable key lists, an answer only
# for the origins its own key lists (the check_request_enabled receiver in shop_recs.api.cors).
CORS_URLS_REGEX = r"^/api/v1/"
CORS_ALLOW_CREDENTIALS = False  # keys travel in a header, never in cookies
CORS_ALLOW_METHODS = ["GET", "HEAD", "POST", "OPTIONS"]
# The headers the API reads: both key forms (Authorization: Bearer, X-Api-Key), JSON bodies, idempotency.
CORS_ALLOW_HEADERS = ["authorization", "x-api-key", "content-type", "idempotency-key", "x-request-id"]
CORS_EXPOSE_HEADERS = ["Retry-After", "X-Request-ID", "Idempotent-Replayed"]
# Browsers cap this (Chrome: 2 h); an origin removed from every key stops being able to read answers at
# once anyway (the actual request is checked against its key), this only spares repeated preflights.
CORS_PREFLIGHT_MAX_AGE = envint("CORS_PREFLIGHT_MAX_AGE", 600)

# --- Product limits --------------------------------------------------------------------------
EVENT_BATCH_MAX = envint("EVENT_BATCH_MAX", 10_000)
PRODUCT_BATCH_MAX = envint("PRODUCT_BATCH_MAX", 5_000)
IDEMPOTENCY_TTL_HOURS = envint("IDEMPOTENCY_TTL_HOURS", 48)
# Events timestamped further than this in the future are rejected (shop_recs.activity.services).
EVENT_FUTURE_TOLERANCE_SECONDS = envint("EVENT_FUTURE_TOLERANCE_SECONDS", 300)
# Events timestamped before this day (UTC) are rejected, and readers skip older rows already stored
# (a year-1 timestamp is stored by PostgreSQL as 1 BC and cannot be read back; shop_recs.catalog.validation).
try:
    EVENT_TIMESTAMP_MIN = _date.fromisoformat(envstr("EVENT_TIMESTAMP_MIN", "2000-01-01").strip())
except ValueError as exc:
    raise ImproperlyConfigured(f"EVENT_TIMESTAMP_MIN={os.environ.get('EVENT_TIMESTAMP_MIN')!r} is not a date") from exc
# Largest dashboard import upload, in MB (shop_recs.imports.forms).
IMPORT_UPLOAD_MAX_MB = envint("IMPORT_UPLOAD_MAX_MB", 50)

# --- Serving hot path (docs/serving.md) ------------------------------------------------------
# Served-list and search-query log rows: 0 = one INSERT on the request (development and tests read
# them right after the response); N = buffered, written by a background thread every
# SERVING_LOG_FLUSH_MS or at N rows (shop_recs.platform.logbuffer). Production (DEBUG off) buffers.
SERVING_LOG_BUFFER_ROWS = envint("SERVING_LOG_BUFFER_ROWS", 0 if DEBUG else 500)
SERVING_LOG_FLUSH_MS = envint("SERVING_LOG_FLUSH_MS", 200)
# Attribution leaves events this recent for its next run, so their buffered lists are written first.
ATTRIBUTION_SETTLE_SECONDS = envfloat("ATTRIBUTION_SETTLE_SECONDS", 10.0 if SERVING_LOG_BUFFER_ROWS else 0.0)
# Customers' latest activity cached in each web process, kept fresh by Redis pub/sub
# (shop_recs.serving.live_activity); off without Redis.
SERVING_ACTIVITY_CACHE = envbool("SERVING_ACTIVITY_CACHE", bool(REDIS_URL))
SERVING_ACTIVITY_TTL = envfloat("SERVING_ACTIVITY_TTL", 300.0)
SERVING_ACTIVITY_MAX_ENTRIES = envint("SERVING_ACTIVITY_MAX_ENTRIES", 20_000)
# How long a process trusts an API key row and a store's active model version it has read
# (a revocation/activation in the same process applies at once).
API_KEY_CACHE_SECONDS = envfloat("API_KEY_CACHE_SECONDS", 5.0)
# While PostgreSQL is unreachable, a key this process confirmed within this many seconds is still
# accepted (shop_recs.api.auth; a key revoked during an outage is accepted that long; 0 = no grace).
API_KEY_OUTAGE_GRACE_SECONDS = envfloat("API_KEY_OUTAGE_GRACE_SECONDS", 300.0)
# Wrong API keys from one address: past API_KEY_FAILURE_LIMIT in a window of
# API_KEY_FAILURE_WINDOW_SECONDS the API answers 429 (shop_recs.api.auth.note_failed_key; 0 = off).
API_KEY_FAILURE_LIMIT = envint("API_KEY_FAILURE_LIMIT", 30)
API_KEY_FAILURE_WINDOW_SECONDS = envint("API_KEY_FAILURE_WINDOW_SECONDS", 60)
# Requests per minute per API key and per client address (REMOTE_ADDR), every /api/v1/ route, fast
# path included (shop_recs.api.ratelimit; counted in the cache, so in Redis across processes; 0 = off).
# Off by default: a shop's backend sends all its customers' requests with one key from one address.
API_RATE_LIMIT_PER_KEY = envint("API_RATE_LIMIT_PER_KEY", 0)
API_RATE_LIMIT_PER_IP = envint("API_RATE_LIMIT_PER_IP", 0)
for _name in ("API_RATE_LIMIT_PER_KEY", "API_RATE_LIMIT_PER_IP"):
    if globals()[_name] < 0:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]} must be 0 (off) or a number of requests per minute")
SERVING_ACTIVE_VERSION_TTL = envfloat("SERVING_ACTIVE_VERSION_TTL", 5.0)
# Per-process caches of a store's merchandising rules, catalog snapshot and popularity lists, in
# seconds (shop_recs.serving; a save in the same process drops the entry at once).
SERVING_RULES_TTL = envfloat("SERVING_RULES_TTL", 30.0)
SERVING_CATALOG_TTL = envfloat("SERVING_CATALOG_TTL", 60.0)
SERVING_POPULARITY_TTL = envfloat("SERVING_POPULARITY_TTL", 600.0)
# Memory budget (MB) of the per-process item-similarity row cache.
SERVING_SIMILARITY_CACHE_MB = envfloat("SERVING_SIMILARITY_CACHE_MB", 64.0)
# BLAS threads used for scoring one request (1: requests are parallel across processes instead).
SERVING_BLAS_THREADS = envint("SERVING_BLAS_THREADS", 1)
# After this many hot-path requests a web process freezes its long-lived heap once (shop_recs.platform.gcfreeze;
# 0 = never): full garbage-collector passes over it paused requests for ~100 ms.
SERVING_GC_FREEZE_AFTER = envint("SERVING_GC_FREEZE_AFTER", 0 if DEBUG else 500)
# Training precomputes each recently active customer's candidates (shop_recs.training.precompute).
SERVING_PRECOMPUTE_DAYS = envfloat("SERVING_PRECOMPUTE_DAYS", 90.0)
SERVING_PRECOMPUTE_MAX_CUSTOMERS = envint("SERVING_PRECOMPUTE_MAX_CUSTOMERS", 50_000)
# "Frequently bought together": a pair needs this many shared baskets (shop_recs.serving.fbt).
FBT_MIN_SUPPORT = envint("FBT_MIN_SUPPORT", 2)
# How long a process trusts a store's running experiments (shop_recs.serving.experiments), seconds.
EXPERIMENTS_CACHE_TTL = envfloat("EXPERIMENTS_CACHE_TTL", 10.0)
# Promoting an experiment variant without "promote anyway" needs this many impressions per variant
# (and a significant result); analytics.experiments.selectors.promotion_check.
EXPERIMENT_PROMOTE_MIN_IMPRESSIONS = envint("EXPERIMENT_PROMOTE_MIN_IMPRESSIONS", 1000)

# --- Search (shop_recs.search) ---------------------------------------------------------------
# Weight of the customer's personal scores when re-ranking text matches (0 = text only).
SEARCH_PERSONAL_WEIGHT = envfloat("SEARCH_PERSONAL_WEIGHT", 0.3)
# How often (seconds) a process checks whether a store's search index is stale.
SEARCH_INDEX_CHECK_SECONDS = envfloat("SEARCH_INDEX_CHECK_SECONDS", 5.0)
# Keyword arguments of SearchIndex (shop_recs.search.index); code only, no environment variable.
SEARCH_INDEX_PARAMS: dict = {}

# --- Ads (shop_recs.ads) ---------------------------------------------------------------------
# How long a process trusts a store's eligible campaigns, seconds.
ADS_CAMPAIGN_CACHE_TTL = envfloat("ADS_CAMPAIGN_CACHE_TTL", 5.0)
# How long a process trusts a known customer's segments for ad targeting, seconds (0: read every request).
ADS_VISITOR_CACHE_TTL = envfloat("ADS_VISITOR_CACHE_TTL", 60.0)
if ADS_VISITOR_CACHE_TTL < 0:
    raise ImproperlyConfigured(f"ADS_VISITOR_CACHE_TTL={ADS_VISITOR_CACHE_TTL} must be 0 or more")
# A conversion is credited to an ad shown this many days before it.
ADS_ATTRIBUTION_WINDOW_DAYS = envint("ADS_ATTRIBUTION_WINDOW_DAYS", 7)
# Pacing: share of a day's budget a campaign may spend ahead of an even pace over the (UTC) day.
ADS_PACING_TOLERANCE = envfloat("ADS_PACING_TOLERANCE", 0.05)
if not 0.0 <= ADS_PACING_TOLERANCE <= 1.0:
    raise ImproperlyConfigured(f"ADS_PACING_TOLERANCE={ADS_PACING_TOLERANCE} must be between 0 and 1")
# Commit each impression's charge asynchronously on PostgreSQL (docs/ads.md, "One or two round trips").
ADS_CHARGE_ASYNC_COMMIT = envbool("ADS_CHARGE_ASYNC_COMMIT", True)

# --- Training and evaluation (shop_recs.training, analytics.evaluation) -------------------------
# Trained model artifacts (<MODEL_DIR>/<store_slug>/<file>.npz) and tuning job outputs.
MODEL_DIR = Path(envstr("SHOP_RECS_MODEL_DIR", str(VAR_DIR / "models")))
# Where artifacts are kept (shop_recs.training.artifacts, docs/operations.md "Model artifacts"):
# "filesystem" (default) keeps them in MODEL_DIR, which every web and worker process must share;
# "s3" keeps them in an S3-compatible bucket (django-storages) and MODEL_DIR becomes each process's
# local download cache, so web replicas on other machines need no shared directory.
ARTIFACT_STORAGE = envstr("ARTIFACT_STORAGE", "filesystem").strip().lower()
if ARTIFACT_STORAGE == "filesystem":
    _ARTIFACT_STORAGE = {"BACKEND": "shop_recs.training.storage.ModelDirStorage"}
elif ARTIFACT_STORAGE == "s3":
    if not envstr("AWS_STORAGE_BUCKET_NAME", "").strip():
        raise ImproperlyConfigured("ARTIFACT_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME (the bucket of the artifacts)")
    _ARTIFACT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": envstr("AWS_STORAGE_BUCKET_NAME", "").strip(),
            # Empty: AWS itself; set for MinIO, Ceph, moto and other S3-compatible servers.
            "endpoint_url": envstr("AWS_S3_ENDPOINT_URL", "").strip() or None,
            "region_name": envstr("AWS_S3_REGION_NAME", "").strip() or None,
            # Unset credentials: boto3's own chain (AWS_* variables, instance role, ~/.aws).
            "access_key": envstr("AWS_ACCESS_KEY_ID", "") or None,
            "secret_key": envstr("AWS_SECRET_ACCESS_KEY", "") or None,
            "location": envstr("ARTIFACT_S3_PREFIX", "models").strip("/"),
            "file_overwrite": True,  # names are unique per version; never rename on upload
            "default_acl": None,
            "querystring_auth": False,
        },
    }
else:
    raise ImproperlyConfigured(f"ARTIFACT_STORAGE={ARTIFACT_STORAGE!r} must be 'filesystem' or 's3'")
# Read through django.core.files.storage.storages["artifacts"].
STORAGES["artifacts"] = _ARTIFACT_STORAGE
TUNING_DIR = Path(envstr("SHOP_RECS_TUNING_DIR", str(VAR_DIR / "tuning")))
# Hard and soft Celery time limits of one training run, seconds (the soft one fails the run cleanly).
TRAINING_TIME_LIMIT = envint("TRAINING_TIME_LIMIT", 60 * 60)
TRAINING_SOFT_TIME_LIMIT = envint("TRAINING_SOFT_TIME_LIMIT", TRAINING_TIME_LIMIT - 5 * 60)
# A running run whose heartbeat is older than this lost its worker; 0 = automatic (300 s on
# PostgreSQL, elsewhere TRAINING_TIME_LIMIT + 5 min).
TRAINING_STALE_SECONDS = envint("TRAINING_STALE_SECONDS", 0)
# Background jobs (shop_recs.platform.jobs: imports, evaluations, tuning) whose heartbeat is older than
# this lost their worker; jobs without a heartbeat thread only beat per stage, hence 6 hours.
JOB_STALE_SECONDS = envfloat("JOB_STALE_SECONDS", 6 * 3600.0)
# Offline evaluation of a trained model samples at most this many customers.
TRAINING_EVAL_MAX_USERS = envint("TRAINING_EVAL_MAX_USERS", 5_000)
# Test hook only (tests/faults): the training data stage sleeps this many seconds so a worker can be
# killed mid-run. Never set in production; 0 = off.
TRAINING_TEST_DELAY_SECONDS = envfloat("SHOP_RECS_TEST_TRAINING_DELAY", 0.0)
# Test hook only (tests/faults): "<checkpoint>=<seconds>" makes a job sleep at that named checkpoint
# (platform.jobs.pause_for_fault_test) so a worker can be killed there. Never set in production; "" = off.
JOB_TEST_PAUSE = envstr("SHOP_RECS_TEST_JOB_PAUSE", "")

# --- Metrics (Prometheus, shop_recs.platform.metrics; docs/operations.md "Metrics") ------------------
# Off: no middleware, no counting, /metrics answers 404. Several processes (gunicorn workers) need
# PROMETHEUS_MULTIPROC_DIR in their environment (gunicorn.conf.py sets one per server).
METRICS_ENABLED = envbool("METRICS_ENABLED", True)
# Read by prometheus_client itself at import (each process's values go to files there); here only so
# the code can tell multiprocess mode. Must be empty or a writable directory.
PROMETHEUS_MULTIPROC_DIR = envstr("PROMETHEUS_MULTIPROC_DIR", "")
# Who may GET /metrics: a direct request from these addresses or networks (never one forwarded by a
# proxy), or anyone sending "Authorization: Bearer <METRICS_TOKEN>" when a token is set.
METRICS_ALLOWED_IPS = envlist("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
METRICS_TOKEN = envstr("METRICS_TOKEN", "")
for _entry in METRICS_ALLOWED_IPS:
    try:
        _ipaddress.ip_network(_entry, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {_entry!r} is not an IP address or network") from _exc
# Celery queues whose length a scrape reads from the Redis broker (default: the default and heavy queues).
METRICS_CELERY_QUEUES = envlist("METRICS_CELERY_QUEUES", [])
# The scrape's broker timeout (connect and read), milliseconds: a down broker must not stall the scrape.
METRICS_BROKER_TIMEOUT_MS = envint("METRICS_BROKER_TIMEOUT_MS", 200)
# A Celery worker serves its own metrics (the jobs it runs) on this port; 0 = off.
METRICS_WORKER_PORT = envint("METRICS_WORKER_PORT", 0)
METRICS_WORKER_ADDR = envstr("METRICS_WORKER_ADDR", "127.0.0.1")

# Logs go to stderr: "plain" lines for a developer, or "json" (one object per line, for a log
# shipper) with LOG_FORMAT=json. Every record carries the request id (shop_recs.platform.requestid):
# the web request's, or in a job, the id of the request that started it ("-" for neither).
LOG_FORMAT = envstr("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be 'plain' or 'json'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "shop_recs.platform.requestid.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "shop_recs.platform.requestid.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- HTTPS (docs/operations.md, "The production environment") ---------------------------------
# All off by default except the secure cookies: TLS ends at a proxy in front of gunicorn, and only the
# deployment knows whether that proxy exists and which header it sets. `manage.py check --deploy`
# (tests/test_deploy_check.py) passes with the documented production environment.
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not DEBUG)
# A stale or cookie-less form gets a styled page that says what to do, not Django's bare 403.
CSRF_FAILURE_VIEW = "shop_recs.dashboard.errors.csrf_failure"
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
# The load balancer's probes speak plain HTTP to the app: a 301 to https would fail them.
# Patterns match the path without its leading slash (django.middleware.security).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
if SECURE_HSTS_SECONDS < 0:
    raise ImproperlyConfigured(f"SECURE_HSTS_SECONDS={SECURE_HSTS_SECONDS} must be 0 (off) or a number of seconds")


def _proxy_ssl_header(raw: str) -> tuple[str, str] | None:
    """``HTTP_X_FORWARDED_PROTO`` (or ``HTTP_X_FORWARDED_PROTO=https``) -> Django's (header, value) pair.

    Only set it behind a proxy that always sets (or strips) that header: otherwise a client could
    claim https itself.
    """
    raw = raw.strip()
    if not raw:
        return None
    name, _sep, value = raw.partition("=")
    name, value = name.strip().upper(), (value.strip() or "https")
    if not re.fullmatch(r"HTTP_[A-Z0-9_]+", name):
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER={raw!r} must name a request header as Django sees it, "
            "e.g. HTTP_X_FORWARDED_PROTO (optionally =https)"
        )
    return (name, value)


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(envstr("SECURE_PROXY_SSL_HEADER", ""))

# --- Error reporting (optional) -------------------------------------------------------------------
# With SENTRY_DSN set, unhandled errors (web requests, API 500s, Celery tasks) and ERROR log lines go
# to Sentry (shop_recs.platform.sentry); without it nothing is initialised and nothing is sent.
SENTRY_DSN = envstr("SENTRY_DSN", "").strip()
SENTRY_ENVIRONMENT = envstr("SENTRY_ENVIRONMENT", "production")
SENTRY_SAMPLE_RATE = envfloat("SENTRY_SAMPLE_RATE", 1.0)
SENTRY_TRACES_SAMPLE_RATE = envfloat("SENTRY_TRACES_SAMPLE_RATE", 0.0)
for _name, _rate in (
    ("SENTRY_SAMPLE_RATE", SENTRY_SAMPLE_RATE),
    ("SENTRY_TRACES_SAMPLE_RATE", SENTRY_TRACES_SAMPLE_RATE),
):
    if not 0.0 <= _rate <= 1.0:
        raise ImproperlyConfigured(f"{_name}={_rate} must be between 0 and 1")
if SENTRY_DSN:
    from shop_recs.platform.sentry import init_sentry

    init_sentry(
        SENTRY_DSN,
        environment=SENTRY_ENVIRONMENT,
        sample_rate=SENTRY_SAMPLE_RATE,
        traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
    )
