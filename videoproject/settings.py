"""Settings for the video platform.

Everything comes from environment variables (or a `.env` file beside manage.py), and every
value has an embedded default that needs no server: SQLite, local disk under ./media and the
`local` dispatch backend. See README.md, "Configuration".
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-change-me-in-production")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Outputs are rewritten in place on reprocessing; never "init_AbC12.mp4".
        "OPTIONS": {"allow_overwrite": True},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Uploads above 2.5 MB stream to a temporary file, never into memory.
FILE_UPLOAD_TEMP_DIR = env("FILE_UPLOAD_TEMP_DIR", default=None)

# --- transcoding (defaults live in transcoding/conf.py) ------------------------------------
TRANSCODING_DISPATCH = env("TRANSCODING_DISPATCH", default="local")
TRANSCODING_FFMPEG_BINARY = env("TRANSCODING_FFMPEG_BINARY", default=None)
TRANSCODING_SEGMENT_SECONDS = env.float("TRANSCODING_SEGMENT_SECONDS", default=4.0)
TRANSCODING_CHUNK_SECONDS = env.float("TRANSCODING_CHUNK_SECONDS", default=120.0)
TRANSCODING_LEASE_SECONDS = env.int("TRANSCODING_LEASE_SECONDS", default=120)
TRANSCODING_MAX_ATTEMPTS = env.int("TRANSCODING_MAX_ATTEMPTS", default=3)
TRANSCODING_MAX_UPLOAD_BYTES = env.int("TRANSCODING_MAX_UPLOAD_BYTES", default=50 * 1024**3)
TRANSCODING_LOCAL_CONCURRENCY = env.int("TRANSCODING_LOCAL_CONCURRENCY", default=1)
TRANSCODING_WORK_DIR = env("TRANSCODING_WORK_DIR", default=None)
TRANSCODING_RUN_DIR = env.path("TRANSCODING_RUN_DIR", default=BASE_DIR / "run")
# Generated subtitles: faster-whisper on the worker (a model name from the hub, or a local
# model directory), or Amazon Transcribe through boto3 (region and credentials as boto3 reads them).
TRANSCODING_SPEECH_ENGINE = env("TRANSCODING_SPEECH_ENGINE", default="faster-whisper")
TRANSCODING_WHISPER_MODEL = env("TRANSCODING_WHISPER_MODEL", default="small")
TRANSCODING_WHISPER_COMPUTE_TYPE = env("TRANSCODING_WHISPER_COMPUTE_TYPE", default="int8")
TRANSCODING_TRANSCRIBE_BUCKET = env("TRANSCODING_TRANSCRIBE_BUCKET", default="")
TRANSCODING_TRANSCRIBE_POLL_SECONDS = env.float("TRANSCODING_TRANSCRIBE_POLL_SECONDS", default=5.0)
TRANSCODING_SERVE_MEDIA = env.bool(
    "TRANSCODING_SERVE_MEDIA",
    default=STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"),
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"transcoding": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")}},
}
