"""Settings for the video platform.

Everything comes from environment variables (or a `.env` file beside manage.py), and every
value has an embedded default that needs no server: SQLite, local disk under ./media and the
`local` dispatch backend. See README.md, "Configuration".
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from transcoding.conf import environment_settings

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
# Development (DEBUG=1, as `make run` and the tests set it) may use a fixed key; anything else
# must be given a real one, or it would sign sessions and URLs with a key everyone can read.
DEV_SECRET_KEY = "dev-only-insecure-key-change-me-in-production"
SECRET_KEY = env("SECRET_KEY", default="").strip()
if not SECRET_KEY and DEBUG:
    SECRET_KEY = DEV_SECRET_KEY
elif not DEBUG and (
    len(SECRET_KEY) < 50
    or len(set(SECRET_KEY)) < 5
    or SECRET_KEY == DEV_SECRET_KEY
    or SECRET_KEY.startswith("django-insecure-")
):
    # Django's own test for a weak key (check --deploy), enforced: it signs sessions and URLs.
    raise ImproperlyConfigured(
        "SECRET_KEY is not set to a real key: production (DEBUG off) needs a random SECRET_KEY of "
        "at least 50 characters in the environment; for development set DEBUG=1 (see SECURITY.md)."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS (all off by default, for a development server on http; docs/production.env turns them
# on, and `manage.py check --deploy` passes with it). Behind a load balancer or API Gateway that
# ends TLS, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https" tells Django the request was
# https: set it only when that proxy always sets (or strips) the header.
_proxy_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
SECURE_PROXY_SSL_HEADER = tuple(_proxy_header) if len(_proxy_header) == 2 else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "transcoding",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "videoproject.urls"
WSGI_APPLICATION = "videoproject.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker write at the same time. WAL lets readers run beside a
    # writer, IMMEDIATE transactions take the write lock up front (no lock-upgrade deadlock),
    # and the timeout makes a writer wait instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_TIMEOUT", default=30),
        }
    )
    # A file, not memory, so worker subprocesses started by tests see the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": env("TEST_DATABASE_NAME", default=str(BASE_DIR / "run" / "test-db.sqlite3"))
    }

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The connection budget (docs/database.md). On servers, a psycopg pool per process
    # (DATABASE_POOL_MAX > 0: min/max connections, seconds a thread waits for one); never with
    # persistent connections. On Lambda, no pool and CONN_MAX_AGE=0, through RDS Proxy. Behind a
    # transaction-pooling proxy (RDS Proxy, PgBouncer) no server-side cursors: a cursor would
    # outlive the transaction that holds its server connection (prepared statements are already
    # off: Django's psycopg backend sets prepare_threshold=None).
    _pool_max = env.int("DATABASE_POOL_MAX", default=0)
    if _pool_max > 0:
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(env.int("DATABASE_POOL_MIN", default=1), _pool_max),
            "max_size": _pool_max,
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=30.0),
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
        "DATABASE_DISABLE_SERVER_SIDE_CURSORS", default=False
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# API v1 (docs/api.md): API keys or the admin's session (with CSRF), JSON only, errors as RFC
# 9457 problem details, write endpoints rate-limited per key. The throttle counts in Django's
# cache: with several web processes, point CACHES at a shared one (Redis) or each counts alone.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "transcoding.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["transcoding.api.permissions.ApiPermission"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["transcoding.api.throttling.WriteRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"write": env("API_WRITE_RATE", default="120/min")},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "transcoding.api.problems.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Video platform API",
    "DESCRIPTION": "Upload, import, manage and play videos; see docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc from this site's own static files (drf-spectacular-sidecar), no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "VideoStatusEnum": "transcoding.models.VideoStatus",
        "PartStatusEnum": "transcoding.models.PartStatus",
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_URL = env("MEDIA_URL", default="/media/")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

STORAGES = {
    "default": {
        "BACKEND": "transcoding.storage.local.MediaFileSystemStorage",
        # Outputs are rewritten in place on reprocessing; never "init_AbC12.mp4". Each write is
        # renamed over the old file, so a reader never sees a half-written playlist (storage.local).
        "OPTIONS": {"allow_overwrite": True},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# STORAGE=s3: media (originals and outputs) in a bucket through django-storages, private by
# default: URLs are presigned and expire. S3-compatible services through AWS_S3_ENDPOINT_URL.
STORAGE = env("STORAGE", default="local")
if STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "transcoding.storage.s3.MediaS3Storage",
        "OPTIONS": {
            "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "location": env("AWS_S3_KEY_PREFIX", default=""),
            "default_acl": None,  # the bucket's policy decides; private unless made public there
            "querystring_auth": True,
            "querystring_expire": env.int("AWS_QUERYSTRING_EXPIRE", default=3600),
            "file_overwrite": True,
            "custom_domain": env("AWS_S3_CUSTOM_DOMAIN", default=None),
            "addressing_style": env("AWS_S3_ADDRESSING_STYLE", default=None),
            "signature_version": "s3v4",
        },
    }
    # Static files in the same bucket under static/ (public read there, or a CDN in front):
    # on Lambda there is no disk to serve them from.
    STORAGES["staticfiles"] = {
        "BACKEND": "storages.backends.s3.S3ManifestStaticStorage",
        "OPTIONS": {
            "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "location": "static",
            "querystring_auth": False,
            "default_acl": None,
            "custom_domain": env("AWS_S3_CUSTOM_DOMAIN", default=None),
        },
    }

# Uploads stop as soon as a file passes its limit (nothing more is written); above 2.5 MB they
# stream to a temporary file, never into memory; both hash the bytes as they arrive (the
# video's content address).
FILE_UPLOAD_HANDLERS = [
    "transcoding.ingest.upload_handlers.LimitedUploadHandler",
    "transcoding.ingest.upload_handlers.HashingMemoryFileUploadHandler",
    "transcoding.ingest.upload_handlers.HashingTemporaryFileUploadHandler",
]
FILE_UPLOAD_TEMP_DIR = env("FILE_UPLOAD_TEMP_DIR", default=None)

# --- transcoding: every TRANSCODING_* setting (names, types, defaults and meanings in
# transcoding/conf.py) can be set by an environment variable of the same name.
globals().update(environment_settings(os.environ))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "transcoding": {
            "handlers": ["console"],
            "level": env("LOG_LEVEL", default="INFO"),
            "propagate": False,
        }
    },
}

# --- Celery (TRANSCODING_DISPATCH=celery; the app is videoproject/celery.py) ----------------
# Workers: `celery -A videoproject worker -l info --pool prefork --concurrency N`, plus one
# `celery -A videoproject beat -l info` for the watchdog.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
# Results are not needed (job state lives in the database); set one to inspect task outcomes.
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_IMPORTS = ["transcoding.jobs.dispatch.celery"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# At least once: acknowledge after the task ran, redeliver when the worker process died, and
# reserve one message per process so a long encode never holds others back.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Two queues, both consumed by every worker (kombu alternates between them): the start of each
# video (its first chunk, subtitles) goes to the first, so it never waits behind the later
# chunks of a long video queued before it.
CELERY_TASK_QUEUES = {"transcoding-first": {}, "celery": {}}
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Redis redelivers an unacknowledged message after `visibility_timeout` seconds, even when its
# worker is alive: keep it above the longest job and the longest retry backoff (900 s). A job
# outliving it is delivered twice, and the duplicate is refused by the claim. A dead worker's
# job is recovered sooner by the watchdog (lease expiry + up to 60 s). Override or extend with
# JSON, e.g. CELERY_BROKER_TRANSPORT_OPTIONS='{"visibility_timeout": 86400}'.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 12 * 3600,
    **env.json("CELERY_BROKER_TRANSPORT_OPTIONS", default={}),
}
CELERY_BEAT_SCHEDULE = {
    "transcoding-requeue-stuck": {
        "task": "transcoding.requeue_stuck",
        "schedule": 60.0,
        "options": {"expires": 55},  # no pile-up while every worker is down
    },
}
