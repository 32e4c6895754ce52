"""The suite's fixtures live in tests/support/, loaded here as pytest plugins, so a test module
takes a fixture by naming it and never imports one from another test module."""

from pathlib import Path

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.s3",
    "tests.support.canary",
    "tests.support.outbound",
    "tests.support.browser",
    "tests.support.api",
    "tests.support.services",
    "tests.support.own_services",
    "tests.support.lambda_runtime",
    "tests.support.webhooks",
]


def pytest_configure(config):
    (Path(__file__).resolve().parent.parent / "run").mkdir(exist_ok=True)  # the SQLite test database
