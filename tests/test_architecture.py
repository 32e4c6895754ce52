"""The layout's rules, checked from the code's own imports (docs/architecture.md): no import
cycle among the project's modules (imports inside functions counted), the media core knows
nothing of the database or storage, only the dispatch backends import celery or zappa, and
every module stays under 500 lines."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "transcoding"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path) -> set[str]:
    """Every module `path` imports, wherever the import statement is."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {i for i in imports(path) if i in known and i != name} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(graph()) == []


@pytest.mark.parametrize(
    "layer, forbidden",
    [
        (
            "transcoding.media",
            ("transcoding.models", "transcoding.storage", "transcoding.status", "django.db"),
        ),
        (
            "transcoding.status",
            (
                "transcoding.encoding",
                "transcoding.jobs",
                "transcoding.web",
                "transcoding.services",
                "transcoding.webhooks",
            ),
        ),
        (
            "transcoding.storage",
            ("transcoding.encoding", "transcoding.jobs", "transcoding.web", "transcoding.status"),
        ),
        (
            "transcoding.ingest",
            (
                "transcoding.encoding",
                "transcoding.jobs.runner",
                "transcoding.services",
                "transcoding.webhooks",
            ),
        ),
        ("transcoding.captions", ("transcoding.encoding", "transcoding.jobs", "transcoding.services")),
        ("transcoding.encoding", ("transcoding.services", "transcoding.web", "transcoding.admin")),
        # The API is thin: services and selectors below it, never the workers' internals.
        (
            "transcoding.api",
            (
                "transcoding.encoding",
                "transcoding.jobs",
                "transcoding.media",
                "transcoding.web",
                "transcoding.admin",
            ),
        ),
        (
            "transcoding.downloads",
            ("transcoding.encoding", "transcoding.services", "transcoding.web", "transcoding.admin"),
        ),
        (
            # Requests to users' addresses: below everything but the settings and the errors.
            "transcoding.outbound",
            (
                "transcoding.models",
                "transcoding.storage",
                "transcoding.status",
                "transcoding.ingest",
                "transcoding.jobs",
                "transcoding.services",
                "transcoding.media",
                "django.db",
                "django.core.files",
            ),
        ),  # fmt: skip
        (
            "transcoding.webhooks",
            (
                "transcoding.services",
                "transcoding.web.",  # the views (not webhooks itself)
                "transcoding.admin",
                "transcoding.encoding",
                "transcoding.jobs.runner",
                "transcoding.jobs.tasks",
                "transcoding.jobs.watchdog",
            ),
        ),
    ],
)
def test_layers_import_only_downwards(layer, forbidden):
    known = modules()
    for name, path in known.items():
        if name == layer or name.startswith(layer + "."):
            wrong = sorted(i for i in imports(path) if i.startswith(forbidden))
            assert not wrong, f"{name} imports {wrong}"


def test_only_the_dispatch_backends_import_celery_or_zappa():
    for name, path in modules().items():
        if not name.startswith("transcoding.jobs.dispatch"):
            assert not {i for i in imports(path) if i.split(".")[0] in ("celery", "zappa")}, name


def test_modules_stay_small():
    for name, path in modules().items():
        assert len(path.read_text().splitlines()) <= 500, name
