"""The OpenAPI schema: valid, served with its documentation pages from this site alone, true
to the JSON the API sends, and a bounded schema-driven fuzz run finds no 500 anywhere."""

import re
import socket

import pytest
import schemathesis
import yaml
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.support.rows import ready_rows
from transcoding.api.keys import api_key_create

pytestmark = pytest.mark.django_db


def test_the_schema_validates_without_warnings(tmp_path):
    """drf-spectacular's own validation against the OpenAPI 3 meta-schema; a warning (an
    unresolvable type, a name collision) fails it too."""
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.") and "/api/v1/videos/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_the_documents_keys_are_the_schemas(api):
    """The schema's Video component names exactly the keys the API sends."""
    (pk,) = ready_rows(1)
    schema = api.get("/api/v1/schema/?format=json").json()
    declared = set(schema["components"]["schemas"]["Video"]["properties"])
    assert declared == set(api.get(f"/api/v1/videos/{pk}/").json())


def test_the_docs_pages_load_nothing_from_elsewhere(client):
    for path in ("/api/v1/docs/", "/api/v1/redoc/"):
        page = client.get(path).content.decode()
        sources = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert sources and all(s.startswith("/") for s in sources), sources
        for source in sources:
            if source.startswith(django_settings.STATIC_URL):
                assert finders.find(source.removeprefix(django_settings.STATIC_URL)), source


schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", get_wsgi_application())
# Valid and invalid inputs both: a malformed body or parameter must be a 4xx, never a 500.
schema.config.generation.update(modes=list(GenerationMode), database="none")


@pytest.fixture
def offline_dns(monkeypatch):
    """Every name the fuzzer puts in an import URL resolves to a documentation address (which
    the import refuses), without asking a resolver: the test sends nothing off the machine."""

    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def fuzz_headers(editor, offline_dns):
    """Rows to find, and a read-write key: the fuzzer reaches past authentication. The
    requests go through the WSGI handler in this process, which would close the test's
    database connection after each one (Django's test client unhooks the same signal)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    ready_rows(3)
    _, raw = api_key_create(user=editor, name="fuzz", scope="write")
    yield {"Authorization": f"Bearer {raw}"}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_makes_a_server_error(case, fuzz_headers):
    case.call_and_validate(headers=fuzz_headers, checks=[not_a_server_error])
