"""The production server's configuration (videoproject/gunicorn.conf.py, docs/serving.md): its
values with the defaults and from the environment, and the one-line refusals. The file is run
as gunicorn runs it (a module's namespace); nothing is served."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "videoproject" / "gunicorn.conf.py"


@pytest.fixture
def conf(monkeypatch):
    for name in list(os.environ):
        if name.startswith("GUNICORN_") or name in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
            monkeypatch.delenv(name)

    def load(**env: str) -> dict:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(CONF))

    return load


def test_defaults(conf):
    c = conf()
    assert (c["worker_class"], c["threads"], c["preload_app"], c["bind"]) == (
        "gthread",
        4,
        True,
        "127.0.0.1:8000",
    )
    assert c["workers"] == c["default_workers"](os.cpu_count())
    assert (c["timeout"], c["graceful_timeout"], c["keepalive"]) == (30, 30, 5)
    assert (c["max_requests"], c["max_requests_jitter"]) == (2000, 200)
    assert c["accesslog"] == "-" and c["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert c["control_socket_disable"] is True  # no socket shared by every server of the user


def test_the_environment(conf):
    c = conf(
        WEB_CONCURRENCY="3", GUNICORN_THREADS="2", GUNICORN_BIND="unix:/run/v.sock",
        GUNICORN_ACCESS_LOG="off", GUNICORN_CONTROL_SOCKET="/run/v.ctl",
    )  # fmt: skip
    assert (c["workers"], c["threads"], c["bind"], c["accesslog"]) == (3, 2, "unix:/run/v.sock", None)
    assert c["control_socket_disable"] is False and c["control_socket"] == "/run/v.ctl"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"GUNICORN_THREADS": "four"},
            "Configuration error: GUNICORN_THREADS must be a whole number, not 'four'.",
        ),
        ({"GUNICORN_TIMEOUT": "-1"}, "Configuration error: GUNICORN_TIMEOUT must not be negative, not '-1'."),
    ],
)
def test_a_bad_number_is_refused_in_one_line(conf, env, message):
    with pytest.raises(SystemExit) as refused:
        conf(**env)
    assert str(refused.value) == message


@pytest.mark.parametrize(("cores", "workers"), [(1, 3), (2, 5), (3, 7), (4, 8), (64, 8)])
def test_default_workers(conf, cores, workers):
    assert conf()["default_workers"](cores) == workers


def test_gunicorn_refuses_production_without_a_secret_key_in_one_line():
    """Through gunicorn itself: the settings are checked before the master preloads the site."""
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(DEBUG="0", DJANGO_SETTINGS_MODULE="videoproject.settings")
    command = [sys.executable, "-m", "gunicorn", "-c", str(CONF), "--print-config", "videoproject.wsgi"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("Configuration error: SECRET_KEY is not set to a real key")
