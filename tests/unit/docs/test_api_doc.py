"""docs/api.md lists every error id the API can answer with, and every route it serves."""

from __future__ import annotations

import re

from callcontrol.api.server import ROUTES

from .markdown import REPO

DOC = (REPO / "docs" / "api.md").read_text()
API_SOURCES = [
    *sorted((REPO / "callcontrol" / "api").glob("*.py")),
    REPO / "callcontrol" / "app.py",
    REPO / "callcontrol" / "acd" / "service.py",
    REPO / "callcontrol" / "acd" / "directory.py",
    REPO / "callcontrol" / "errors.py",
]
_RAISED = re.compile(r'ApiError\(\s*\d{3},\s*"(\w+)"|error_response\(\s*\d{3},\s*"(\w+)"')
_MAPPED = re.compile(r'\d{3}: "(\w+)"')
_CLASS_ID = re.compile(r'error_id = "(\w+)"')


def _ids() -> set[str]:
    found: set[str] = set()
    for path in API_SOURCES:
        text = path.read_text()
        found |= {a or b for a, b in _RAISED.findall(text)}
        found |= set(_CLASS_ID.findall(text))
        if path.name == "server.py":
            found |= set(_MAPPED.findall(text)) | {"http_error"}
    return found


def _documented() -> set[str]:
    errors = DOC.split("## Errors", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(\w+)`", errors))


def test_every_error_id_is_documented() -> None:
    ids = _ids()
    assert {"unauthorized", "forbidden", "invalid_body", "agent_exists", "pbx_refused"} <= ids
    missing = sorted(ids - _documented() - {"config_invalid", "flow_invalid"})
    assert not missing, f"docs/api.md 'Errors' does not list {missing}"


def test_every_route_is_documented() -> None:
    routes = DOC.split("## Routes", 1)[1]
    for method, path, _ in ROUTES:
        shown = re.sub(r"\{(\w+)(:[^}]*)?\}", "{}", path)
        shown = re.sub(r"\{agent_id\}", "{id}", shown)
        rows = [re.sub(r"\{\w+\}", "{}", row) for row in routes.splitlines()]
        base = shown.split("/{}", 1)[0] if path.endswith("}") and ":" in path else shown
        assert any(method in row and base in row for row in rows), f"{method} {path}"
