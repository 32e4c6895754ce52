"""Settings: production refuses to start without a real SECRET_KEY; the documented production
configuration (docs/production.env) passes `manage.py check --deploy` with no warning; every
TRANSCODING_* setting can be set from the environment and is documented."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from transcoding.conf import SETTINGS, environment_settings

ROOT = Path(__file__).resolve().parent.parent
# Only what a process needs to run: nothing the test run sets (tests/settings.py, pytest-django,
# DJANGO_ALLOW_ASYNC_UNSAFE for Playwright) or a developer might have exported.
PASSED_ON = re.compile(r"(PATH|HOME|LANG|LC_[A-Z]+|TMPDIR|PYTHONPATH|VIRTUAL_ENV)")


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if PASSED_ON.fullmatch(k)}
    clean.update(DJANGO_SETTINGS_MODULE="videoproject.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def production_env() -> dict[str, str]:
    lines = (ROOT / "docs" / "production.env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"DEBUG": "0"},
        {"DEBUG": "0", "SECRET_KEY": "dev-only-insecure-key-change-me-in-production"},
        {"SECRET_KEY": "dev-only-insecure-key-change-me-in-production "},
        {"SECRET_KEY": " "},
        {"SECRET_KEY": "x" * 80},
        {"SECRET_KEY": "short-but-random-Q7f"},
        {"SECRET_KEY": "django-insecure-" + secrets.token_urlsafe(48)},
    ],
    ids=["nothing-set", "debug-off", "the-public-dev-key", "dev-key-and-a-space", "blank", "one-character",
         "short", "django-insecure"],
)  # fmt: skip
def test_production_refuses_to_start_without_a_real_key(env):
    result = manage("check", **env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Configuration error: SECRET_KEY is not set to a real key")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_development_runs_on_the_development_key():
    assert manage("check", DEBUG="1").returncode == 0


def test_the_documented_production_configuration_passes_check_deploy():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **production_env(),
        SECRET_KEY=secrets.token_urlsafe(64),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_transcoding_settings_are_read_from_the_environment():
    result = manage(
        "shell",
        "-c",
        "from transcoding.conf import settings as s; print(s.RETRY_BASE_SECONDS, s.REDISPATCH_GRACE_SECONDS, "
        "s.MAX_DURATION_SECONDS, s.SERVE_MEDIA)",
        DEBUG="1",
        TRANSCODING_RETRY_BASE_SECONDS="3",
        TRANSCODING_REDISPATCH_GRACE_SECONDS="7.5",
        TRANSCODING_MAX_DURATION_SECONDS="60",
        TRANSCODING_SERVE_MEDIA="false",
    )
    assert result.stdout.splitlines()[-1].split() == ["3.0", "7.5", "60.0", "False"], result.stderr


def test_the_connection_pool_is_sized_from_the_environment_for_postgresql_only():
    """docs/database.md: a psycopg pool per process on servers, none by default (Lambda)."""
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default']; "
        "print(d['OPTIONS'].get('pool'), d['CONN_MAX_AGE'], d.get('DISABLE_SERVER_SIDE_CURSORS'))"
    )
    url = "postgres://u@127.0.0.1:5/x"
    pooled = manage("shell", "-c", code, DEBUG="1", DATABASE_URL=url, DATABASE_POOL_MAX="4")
    assert pooled.stdout.splitlines()[-1] == "{'min_size': 1, 'max_size': 4, 'timeout': 30.0} 0 False"
    proxied = manage(
        "shell", "-c", code, DEBUG="1", DATABASE_URL=url, DATABASE_DISABLE_SERVER_SIDE_CURSORS="1"
    )
    assert proxied.stdout.splitlines()[-1] == "None 0 True"
    sqlite = manage("shell", "-c", code, DEBUG="1", DATABASE_POOL_MAX="4")
    assert sqlite.stdout.splitlines()[-1].startswith("None"), sqlite.stderr


SAMPLES = {str: ("value", "value"), int: ("42", 42), float: ("2.5", 2.5), bool: ("true", True)}


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_setting_reads_its_type_from_the_environment_and_is_documented(name):
    raw, value = SAMPLES[SETTINGS[name].type]
    assert environment_settings({f"TRANSCODING_{name}": raw}) == {f"TRANSCODING_{name}": value}
    assert environment_settings({}) == {}
    docs = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    assert f"TRANSCODING_{name}" in docs
