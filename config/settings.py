"""Settings for the trading platform: one module, driven by the environment.

Nothing set: the *embedded default* (SQLite, in-memory channel layer, local
memory cache, Celery with an in-process broker served by a thread-pool worker
that ``manage.py serve`` starts). ``DATABASE_URL`` switches to PostgreSQL and
``REDIS_URL`` to channels-redis, the Redis cache and a Redis Celery broker with
separate worker and beat processes. ``DJANGO_ENV=production`` turns on every
deployment safeguard and makes secrets mandatory. See ``.env.example``.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production", "test"}:
    raise environ.ImproperlyConfigured(
        f"DJANGO_ENV must be development, production or test, not {DJANGO_ENV!r}"
    )
PRODUCTION = DJANGO_ENV == "production"
TESTING = DJANGO_ENV == "test" or "pytest" in sys.modules

DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)
if PRODUCTION:
    # Production secrets have no default: a missing one stops start-up.
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
else:
    SECRET_KEY = env.str(
        "DJANGO_SECRET_KEY", default="dev-only-insecure-key-change-me-0123456789abcdefghijklmnop"
    )
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --------------------------------------------------------------------------- apps
INSTALLED_APPS = [
    # daphne's ASGI runserver (it must precede staticfiles) only for `runserver`:
    # importing it loads Twisted, a second of start-up no other command needs.
    # `manage.py serve` and production start daphne themselves.
    *(["daphne"] if sys.argv[1:2] == ["runserver"] else []),
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, no CDN
    "django_filters",
    "channels",
    "django_celery_beat",
    "django_celery_results",
    "apps.core",
    "apps.accounts",
    "apps.exchanges",
    "apps.marketdata",
    "apps.bots",
    "apps.orders",
    "apps.risk",
    "apps.backtests",
    "apps.portfolio",
    "apps.home",
    "apps.ops",
]

MIDDLEWARE = [
    # First: every request gets its id, its metrics and its access log line.
    "apps.core.observability.middleware.ObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.core.messages.LazyMessageMiddleware",  # Django's, made on first use
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.core.api.throttling.RateLimitHeadersMiddleware",
    "apps.core.content_policy.ContentPolicyMiddleware",  # django-csp's, the policy built once
    "apps.accounts.middleware.UserTimezoneMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "apps.core.context_processors.platform",
            ],
        },
    },
]

# ----------------------------------------------------------------------- database
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Threads of the embedded worker write while requests read: wait instead of
    # failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    # Under ASGI each request's sync code runs in its own thread, and persistent
    # (per-thread) connections piled up: 16 clients exhausted PostgreSQL's 100
    # connections. One psycopg pool per process bounds them instead: a request
    # borrows a connection and returns it when Django closes it at the end of the
    # request; past ``max_size`` requests wait (up to ``timeout`` s) for a free one.
    # benchmarks/db_connections.py measures it. DATABASE_POOL_MAX_SIZE=0: no pool,
    # a new connection per request (also bounded, slower to connect).
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections, not the threads
    # A connection broken by a PostgreSQL restart is replaced, not handed out (the pool's check).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    _pool_max = env.int("DATABASE_POOL_MAX_SIZE", default=8)
    if _pool_max > 0:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
            "max_size": _pool_max,
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
            # Connections idle longer than this are closed (down to min_size).
            "max_idle": env.float("DATABASE_POOL_MAX_IDLE", default=60.0),
        }
# Threads serving HTTP requests per web process (config/asgi.py). Requests wait little on
# PostgreSQL and Redis, and threads of one process share the GIL, so more of them cost CPU and
# latency in switching. benchmarks/load.py, 300 reads/s on 2 processes, 2 and 4 alternated
# (2026-12-02): 2 threads p95 52, 43, 32, 28, 69 ms at 2.3-3.4 ms of server CPU per read;
# 4 threads p95 140, 140, 62 ms at 2.7-3.8 ms. A request waiting on a live exchange holds its
# thread that long: where many users trade live, raise it or add processes (--workers). Each
# thread holds at most one database connection: keep it at or below DATABASE_POOL_MAX_SIZE.
HTTP_THREADS = env.int("HTTP_THREADS", default=2)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ------------------------------------------------------------------------- redis
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL and TESTING and env.str("PYTEST_XDIST_WORKER", default=""):
    # pytest-xdist worker gwN uses Redis database REDIS_URL's + N, so the workers'
    # Celery queues, channel groups and cache (which a test may clear) never mix.
    # The test servers get the shifted URL without the variable (tests/support/servers.py).
    from urllib.parse import urlsplit

    _redis = urlsplit(REDIS_URL)
    _redis_db = int(_redis.path.strip("/") or 0) + int(env.str("PYTEST_XDIST_WORKER").removeprefix("gw"))
    REDIS_URL = _redis._replace(path=f"/{_redis_db}").geturl()
EMBEDDED = not REDIS_URL

if REDIS_URL:
    from redis.asyncio.retry import Retry as _AsyncRetry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    CACHES = {
        "default": {
            "BACKEND": "apps.core.cache.RedisCache",  # one pool per process (apps/core/cache.py)
            "LOCATION": env.str("REDIS_CACHE_URL", default=REDIS_URL),
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="trading"),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's asyncio pool holds 100 connections by default and raises past that: a burst
                # of WebSocket connects (each a group_add) failed with "Too many connections" (HTTP 500)
                # at a few hundred sockets per server (benchmarks/realtime.py). Its socket timeout (redis-py's
                # default: 5 s) must outlast channels-redis' 5 s blocking pop, or a slow reply under load
                # kills an idle socket's consumer ("Timeout reading from ...").
                # A pooled connection outlives a Redis restart as a dead socket, and redis-py's asyncio
                # pool hands it out unchecked: without a retry (a pool made from a URL has none, unlike
                # redis-py's own clients) the next command on it failed, so the first WebSocket to
                # connect after a restart got a 500 (its group_add; tests/core/test_events_redis_restart.py).
                # One retry on a connection error runs the command again on a fresh connection.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "max_connections": env.int("CHANNELS_REDIS_MAX_CONNECTIONS", default=1000),
                        "socket_timeout": 15,
                        "retry": _AsyncRetry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                    }
                ],
                "prefix": env.str("CHANNELS_PREFIX", default="trading"),
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "apps.core.channel_layer.ThreadSafeInMemoryChannelLayer"}}

# Polled API reads kept per user until a table they read is written (apps/core/api/response_cache.py):
# on with Redis (shared by every process); API_RESPONSE_CACHE_SECONDS bounds what the clock changes.
API_RESPONSE_CACHE = env.bool("API_RESPONSE_CACHE", default=bool(REDIS_URL))
API_RESPONSE_CACHE_SECONDS = env.int("API_RESPONSE_CACHE_SECONDS", default=60)

# Live events kept per user for a reconnecting browser to catch up on (docs/events.md):
# the newest EVENTS_REPLAY_MAX, none older than EVENTS_REPLAY_SECONDS; a longer gap gets live.reset.
EVENTS_REPLAY_MAX = env.int("EVENTS_REPLAY_MAX", default=1000)
EVENTS_REPLAY_SECONDS = env.int("EVENTS_REPLAY_SECONDS", default=15 * 60)

# ------------------------------------------------------------------------ celery
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
# Most tasks ignore their results, but a failure is what the admin jobs page must show.
CELERY_TASK_STORE_ERRORS_EVEN_IF_IGNORED = True
# Retention (days) of task results and dead letters; the beat job "ops: clean up old results"
# deletes older ones. Finished jobs (backtests, imports, replays: users' results) are kept
# unless JOB_RETENTION_DAYS is set (> 0).
TASK_RESULT_RETENTION_DAYS = env.int("TASK_RESULT_RETENTION_DAYS", default=7)
DEAD_LETTER_RETENTION_DAYS = env.int("DEAD_LETTER_RETENTION_DAYS", default=30)
JOB_RETENTION_DAYS = env.int("JOB_RETENTION_DAYS", default=0)
# Celery's own daily celery.backend_cleanup uses the same retention (its default is one day).
CELERY_RESULT_EXPIRES = timedelta(days=TASK_RESULT_RETENTION_DAYS)
CELERY_CACHE_BACKEND = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_TRACK_STARTED = True
# A task is acknowledged after it ran, so a worker that dies mid-task does not
# silently lose it; tasks are written to be idempotent for that reason.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=30 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=35 * 60)
CELERY_TASK_DEFAULT_RETRY_DELAY = 5
CELERY_TASK_DEFAULT_QUEUE = "default"
# Heavy research work (backtests, optimizations) gets its own queue so that it
# never starves short jobs (price polling, order sync).
# Bot ticks get theirs so that they never wait behind a backtest.
CELERY_TASK_ROUTES = {
    "apps.backtests.tasks.*": {"queue": "backtests"},
    "apps.bots.tasks.*": {"queue": "bots"},
}
CELERY_WORKER_QUEUES = ["default", "backtests", "bots"]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 60 * 60}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# ------------------------------------------------------------------ auth, users
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Hashing strength is not under test; a fast hasher keeps the suite quick.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home:index"
LOGOUT_REDIRECT_URL = "accounts:login"
# A password reset link works once and for this long (Django's default is 3 days).
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT_SECONDS", default=60 * 60)
# A dashboard session lasts this long (two weeks), renewed by no activity: log in again then.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE_SECONDS", default=14 * 24 * 60 * 60)
# Failed logins per (email) before a temporary lock-out, and its length.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=15 * 60)


# API rate limits (apps/core/api/throttling.py): requests per window ("60/minute"; s, m, h, d) per
# scope, per user (per client address when anonymous, and always for login). An empty value turns
# a scope's limit off. Under tests every scope defaults to a rate the suite never reaches (its few
# users make thousands of requests a minute); the throttle tests set real rates.
def _rate(name: str, default: str) -> str:
    return env.str(name, default="100000/minute" if TESTING else default)


# Signed-in requests without a stricter scope, and anonymous ones (the schema, the API index).
USER_THROTTLE_RATE = _rate("USER_THROTTLE_RATE", "600/minute")
ANON_THROTTLE_RATE = _rate("ANON_THROTTLE_RATE", "60/minute")
# Per client address: the login/register/refresh endpoints.
LOGIN_THROTTLE_RATE = _rate("LOGIN_THROTTLE_RATE", "20/minute")
# Manual trading: placing/cancelling orders, cancel-all, closing positions, bot start/pause/resume/stop,
# paper account reset. (The kill switch is never stricter than USER_THROTTLE_RATE.)
TRADING_THROTTLE_RATE = _rate("TRADING_THROTTLE_RATE", "60/minute")
# Submitting research jobs: backtests, optimizations, Monte Carlo runs, bot replays.
RESEARCH_THROTTLE_RATE = _rate("RESEARCH_THROTTLE_RATE", "20/minute")
# Signal-bot webhooks: requests per token, and how far a signal's timestamp may be
# from the server's clock before it is refused as a replay (or a badly delayed alert).
SIGNAL_THROTTLE_RATE = _rate("SIGNAL_THROTTLE_RATE", "30/minute")
SIGNAL_MAX_SKEW_SECONDS = env.int("SIGNAL_MAX_SKEW_SECONDS", default=300)
# The demo's admin account (manage.py seed_demo): its password; unset, one is generated and printed once.
DEMO_ADMIN_PASSWORD = env.str("DEMO_ADMIN_PASSWORD", default="")
# Per-user quotas (apps/accounts/quotas.py): the defaults; admins set a user's own in Django admin.
QUOTA_MAX_RESEARCH_JOBS = env.int("QUOTA_MAX_RESEARCH_JOBS", default=5)  # pending or running at once
QUOTA_MAX_RUNNING_BOTS = env.int("QUOTA_MAX_RUNNING_BOTS", default=10)  # starting, running or paused
QUOTA_MAX_BOTS = env.int("QUOTA_MAX_BOTS", default=50)
# Reverse proxies in front of the app that append to X-Forwarded-For. 0: the
# header is ignored and the client address is REMOTE_ADDR (anyone can send the
# header, so trusting it would let a client pick its throttling identity).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="trading@localhost")

# --------------------------------------------------------------------------- i18n
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# -------------------------------------------------------------------- static files
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root before collectstatic
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Plotly's own bundled JS, straight from the installed package: no CDN. Found without
    # importing plotly, which every process (every management command) would pay for.
    ("vendor/plotly", Path(importlib.util.find_spec("plotly").origin).parent / "package_data"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION

# ----------------------------------------------------------------------- the API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "apps.core.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exceptions.exception_handler",
    # One throttle for every view; its rates are the *_THROTTLE_RATE settings above.
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.api.throttling.ApiRateThrottle"],
    # DRF's client address for throttles: the n-th address from the right of X-Forwarded-For.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.api.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    # A used refresh token is revoked, so a stolen one stops working once either side refreshes.
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default=SECRET_KEY),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trading Platform API",
    "DESCRIPTION": "Exchange connections, market data, backtests, bots, orders, portfolio and risk.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The job states every job API shows get one stable name.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "apps.core.jobs.JobStatus",
        # The order vocabulary and positions share field names (side, type, status) with other apps.
        "OrderSideEnum": "apps.orders.enums.OrderSide",
        "OrderTypeEnum": "apps.orders.enums.OrderType",
        "OrderStatusEnum": "apps.orders.enums.OrderStatus",
        "PositionSideEnum": "apps.orders.models.Position.Side",
        # Keeps the market-data job kind's name now that notification channels have a "kind" too.
        "KindEnum": "apps.marketdata.models.ImportJob.Kind",
        "NotificationChannelKindEnum": "apps.risk.models.NotificationChannel.Kind",
        "NotificationDeliveryStatusEnum": "apps.risk.models.NotificationDelivery.Status",
    },
}

# ------------------------------------------------------------------- the platform
SHARED_DATA_DIR = Path(env.str("SHARED_DATA_DIR", default=str(BASE_DIR.parent / "shared" / "data")))
# The heartbeat proves the browser <- Channels <- Celery path end to end.
HEARTBEAT_SECONDS = env.int("HEARTBEAT_SECONDS", default=15)
# /health/ready/: each dependency check (database, Redis, channel layer, Celery) gets this long.
HEALTH_CHECK_TIMEOUT_SECONDS = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", default=5.0)
# Backtests: a run is stopped (failed, "timeout") past this; a running job whose worker sent no
# heartbeat for this long is taken for lost ("worker_lost") by the reaper task.
BACKTEST_TIME_LIMIT_SECONDS = env.int("BACKTEST_TIME_LIMIT_SECONDS", default=30 * 60)
BACKTEST_HEARTBEAT_TIMEOUT_SECONDS = env.int("BACKTEST_HEARTBEAT_TIMEOUT_SECONDS", default=60)
# How often beat runs that reaper (s); installed into its periodic task by migrate/install_schedules.
JOBS_REAP_SECONDS = env.int("JOBS_REAP_SECONDS", default=30)
# A job lost to a fault (its worker died, the database went away) goes back to pending and is sent
# again by itself this many times; after that it is failed with the reason (0: failed at once).
JOB_AUTO_RETRIES = env.int("JOB_AUTO_RETRIES", default=2)
# Every run (and an optimization's best parameters) gets the lookahead check, bounded by this time.
BACKTEST_LOOKAHEAD_SECONDS = env.float("BACKTEST_LOOKAHEAD_SECONDS", default=20.0)
# Bot ticks: a tick's claim on (bot, candle) is a lease; the candle of a worker that died
# mid-tick is ticked again by another worker once it runs out (longer than any tick takes).
BOT_TICK_LEASE_SECONDS = env.int("BOT_TICK_LEASE_SECONDS", default=120)
# A running bot whose last tick is at most this many candles behind the newest closed one ticks
# the candles in between, in order (a tick lost with its worker, or backed off, over a candle
# close); further behind (its data was late for long) it jumps to the newest and says how many it
# skipped: acting on old signals at today's price would be wrong.
BOT_CATCH_UP_CANDLES = env.int("BOT_CATCH_UP_CANDLES", default=5)
# A bot still starting or stopping after this long has its worker task sent again (a lost
# message); a worker normally finishes either within a second.
BOT_TRANSITION_RESEND_SECONDS = env.int("BOT_TRANSITION_RESEND_SECONDS", default=15)
# Market data. Offline (the default under tests) no exchange is contacted and
# live prices come from the replay feed over stored candles.
MARKETDATA_ONLINE = env.bool("MARKETDATA_ONLINE", default=not TESTING)
# {"binance": "http://127.0.0.1:8123"}: send an exchange's API calls elsewhere (a proxy, a fake).
MARKETDATA_API_OVERRIDES = env.json("MARKETDATA_API_OVERRIDES", default={})
MARKETDATA_CCXT_TIMEOUT_MS = env.int("MARKETDATA_CCXT_TIMEOUT_MS", default=10_000)
MARKETDATA_TICKER_CACHE_SECONDS = env.int("MARKETDATA_TICKER_CACHE_SECONDS", default=3)
MARKETDATA_POLL_SECONDS = env.int("MARKETDATA_POLL_SECONDS", default=5)
# Stored minutes replayed per wall-clock minute by the offline replay feed.
MARKETDATA_REPLAY_SPEED = env.float("MARKETDATA_REPLAY_SPEED", default=1.0)
# Bots on user strategies (apps/bots/services/user_code.py): per-tick limits of the sandbox,
# and the sandbox sessions each worker process keeps (one per bot, ~60 MB each).
BOT_SANDBOX_CPU_SECONDS = env.float("BOT_SANDBOX_CPU_SECONDS", default=10.0)
BOT_SANDBOX_WALL_SECONDS = env.float("BOT_SANDBOX_WALL_SECONDS", default=30.0)
BOT_SANDBOX_MEMORY_MB = env.int("BOT_SANDBOX_MEMORY_MB", default=1536)
BOT_SANDBOX_POOL_SIZE = env.int("BOT_SANDBOX_POOL_SIZE", default=8)
BOT_SANDBOX_IDLE_SECONDS = env.float("BOT_SANDBOX_IDLE_SECONDS", default=600.0)

# Exchange API credentials are encrypted at rest with MultiFernet: the first key
# encrypts, every key decrypts (``manage.py rotate_encryption_keys`` re-encrypts
# with the first). Production must set them; development/test generate one dev
# key once and keep it under VAR_DIR so stored credentials survive restarts.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
if not FIELD_ENCRYPTION_KEYS:
    if PRODUCTION:
        raise environ.ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is required in production (comma-separated Fernet keys, newest first; "
            'generate one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())")'
        )
    _dev_key_file = VAR_DIR / "field_encryption.dev.key"
    if not _dev_key_file.exists():
        from cryptography.fernet import Fernet

        _dev_key_file.write_text(Fernet.generate_key().decode())
        _dev_key_file.chmod(0o600)
    FIELD_ENCRYPTION_KEYS = [_dev_key_file.read_text().strip()]

# Notifications (apps/risk/notifications.py): delivery attempts per notification, the
# first retry's delay (doubling after each failure, capped), the HTTP timeout of
# webhooks and Telegram, and the Telegram Bot API base URL (tests point it at a local server).
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=5)
NOTIFICATION_RETRY_BASE_SECONDS = env.float("NOTIFICATION_RETRY_BASE_SECONDS", default=30.0)
NOTIFICATION_RETRY_MAX_SECONDS = env.float("NOTIFICATION_RETRY_MAX_SECONDS", default=30 * 60.0)
NOTIFICATION_HTTP_TIMEOUT_SECONDS = env.float("NOTIFICATION_HTTP_TIMEOUT_SECONDS", default=10.0)
# Webhooks to loopback/private addresses are refused in production (server-side request forgery).
NOTIFICATION_ALLOW_PRIVATE_WEBHOOKS = env.bool("NOTIFICATION_ALLOW_PRIVATE_WEBHOOKS", default=not PRODUCTION)
TELEGRAM_API_BASE_URL = env.str("TELEGRAM_API_BASE_URL", default="https://api.telegram.org")
# Kill switch (apps/risk/killswitch.py): retries of the actions that failed (an exchange down).
KILL_SWITCH_MAX_RETRIES = env.int("KILL_SWITCH_MAX_RETRIES", default=8)
KILL_SWITCH_RETRY_BASE_SECONDS = env.float("KILL_SWITCH_RETRY_BASE_SECONDS", default=15.0)
KILL_SWITCH_EXCHANGE_TIMEOUT_SECONDS = env.float("KILL_SWITCH_EXCHANGE_TIMEOUT_SECONDS", default=10.0)

# ---------------------------------------------------------------------- logging
# One JSON object per line in production (time, level, logger, message, request_id, user_id,
# task_id, task_name and extra fields), readable text elsewhere; LOG_FORMAT=json|plain chooses.
# Every handler redacts secrets (apps/core/observability/logs.py). docs/operations.md.
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    raise environ.ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "apps.core.observability.logs.ContextFilter"},
        "redact": {"()": "apps.core.observability.logs.RedactFilter"},
    },
    "formatters": {
        "json": {"()": "apps.core.observability.logs.JsonFormatter"},
        "plain": {"()": "apps.core.observability.logs.PlainFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own handlers (a second, unfiltered console, mail_admins) go: its records
        # reach the root's handler like every other.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        # runserver's own request lines repeat the access log's.
        "django.server": {"handlers": [], "level": "WARNING", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "celery": {"level": "INFO"},
        # One line per HTTP request (ObservabilityMiddleware); LOG_ACCESS_LEVEL=WARNING silences it.
        "trading.access": {"level": env.str("LOG_ACCESS_LEVEL", default="INFO")},
    },
}

# ------------------------------------------------------- content security policy
# Every page, in every environment (so tests see what production sends): scripts only
# from our own files (no inline script or event handler, no eval: Plotly's candlestick
# and bar charts need none), everything else from the same origin (WebSockets included:
# 'self' covers ws(s):// of the same host). Inline *styles* stay allowed: Plotly and the
# Swagger UI set style attributes, and a style cannot run code. docs/security.md.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# ---------------------------------------------------------------------- metrics
# /metrics (Prometheus) answers only to "Authorization: Bearer <METRICS_TOKEN>"; unset, it is
# off (404). Several processes (web, workers): set PROMETHEUS_MULTIPROC_DIR for all of them
# (an empty directory they share) so /metrics sums their counters. docs/operations.md.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")

# ----------------------------------------------------------------- deployment
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
