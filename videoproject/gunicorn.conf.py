"""Gunicorn's configuration for the site on a server (docs/serving.md):

    gunicorn -c videoproject/gunicorn.conf.py videoproject.wsgi      # or: make serve

Every value comes from an environment variable with the default below, so one file serves a
laptop, a container and a server. The encodes never run here: they run in Celery workers (or
the local worker), so a web process only reads the database and the storage and answers.

- Workers: processes, `WEB_CONCURRENCY`, default 2 x cores + 1 (at most 8 by default: each
  Django process holds about 100 MB and its own database connections).
- Threads: `GUNICORN_THREADS` per worker (gthread), default 4. A request waits mostly on
  PostgreSQL or on storage (reading a manifest from S3, streaming a `/media/` file on local
  storage), so threads keep a core busy while others wait. A worker opens up to one database
  connection per thread: the site needs workers x threads connections (docs/database.md).
- Preload: the application is imported once in the master before forking (`preload_app`), so
  workers share its memory pages and a broken configuration (no SECRET_KEY, a bad
  DATABASE_URL scheme) stops the master at once instead of every worker failing in a loop.
  Django opens no database connection at import, so none is shared across the fork. The price:
  a code change needs a full restart (SIGHUP reloads the configuration, not preloaded code).
"""

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"Configuration error: {name} must be a whole number, not {value!r}.")
    if number < 0:
        raise SystemExit(f"Configuration error: {name} must not be negative, not {value!r}.")
    return number


def default_workers(cores: int) -> int:
    """2 x cores + 1, the usual rule for requests that wait on I/O part of the time, capped at
    8: more processes than that mostly add database connections and memory."""
    return min(2 * cores + 1, 8)


def _check_settings() -> None:
    """Load Django's settings now, so a refused configuration (no SECRET_KEY with DEBUG off)
    is one line on the terminal rather than a traceback from the preloading master."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videoproject.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.SECRET_KEY  # noqa: B018 (evaluating it imports the settings module)
    except ImproperlyConfigured as exc:
        raise SystemExit(f"Configuration error: {exc}")


_check_settings()

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = _int("WEB_CONCURRENCY", default_workers(multiprocessing.cpu_count())) or 1
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4) or 1
preload_app = True

# A worker that sends no heartbeat for this long is killed and replaced. With gthread the
# heartbeat is the worker's main loop, not a request: a slow request does not trip it.
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Behind a reverse proxy that keeps connections to us open, a little longer than its own idle
# timeout towards the upstream would be wasted; 5 s covers a proxy's reuse of a connection.
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Workers are replaced after this many requests (with jitter, so not all at once): whatever a
# long-running process accumulates is bounded.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)
# Request line and headers: gunicorn's defaults (4094 bytes, 100 fields) are kept.

# The proxy's address: only it may set X-Forwarded-* (gunicorn reads FORWARDED_ALLOW_IPS too).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Access log to stdout by default ("-"); a path writes there; "off" disables it (the proxy
# logs requests too). The last field is the time taken in microseconds.
_access = os.environ.get("GUNICORN_ACCESS_LOG", "-")
accesslog = None if _access.lower() in ("off", "none", "") else _access
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# Gunicorn 25+ opens a control socket, by default at one path per user: two servers on one
# machine (a staging and a production site, or a test beside a developer's) would share it.
# Off unless a path is given.
_control = os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
control_socket_disable = not _control
if _control:
    control_socket = _control
# The heartbeat file in memory, not on a disk that may stall (containers: /tmp on overlayfs).
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
