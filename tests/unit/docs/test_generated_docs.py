"""The generated documents are current: docs/configuration.md matches the typed config,
docs/openapi.json is what the daemon serves at /api/openapi.json (regenerate: ``make docs``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from aiohttp.test_utils import TestClient, TestServer

from callcontrol import docsgen
from callcontrol.api.auth import TokenStore
from callcontrol.api.backend import ApiBackend
from callcontrol.api.server import build_app
from callcontrol.config import Config

from .markdown import REPO


def test_generated_documents_are_current() -> None:
    outdated = docsgen.stale(REPO)
    assert not outdated, f"{outdated} differ from the code: run `{docsgen.REGENERATE}`"


def test_check_mode_names_a_stale_file(tmp_path: Path) -> None:
    assert docsgen.main(["--root", str(tmp_path), "--check"]) == 1
    assert docsgen.main(["--root", str(tmp_path)]) == 0
    assert docsgen.main(["--root", str(tmp_path), "--check"]) == 0
    (tmp_path / "docs" / "configuration.md").write_text("old\n")
    assert docsgen.stale(tmp_path) == ["docs/configuration.md"]


def test_every_config_field_is_described_and_has_an_example() -> None:
    undescribed = [
        f"{path or 'top level'}.{name}"
        for path, model in docsgen.sections()
        for name, info in model.model_fields.items()
        if not (info.description or "").strip()
    ]
    assert not undescribed, (
        f"config fields without a docstring (write one under the field in "
        f"callcontrol/config.py, then `{docsgen.REGENERATE}`): {undescribed}"
    )


def test_the_complete_example_is_a_valid_config() -> None:
    example = docsgen.example_config()
    config = Config.model_validate(example)
    assert config.agents and config.queues and config.schedules
    assert all(set(agent.queues) <= set(config.queues) for agent in config.agents)
    assert "A complete example" in (REPO / "docs" / "configuration.md").read_text()


def test_every_field_is_in_the_reference() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    for path, model in docsgen.sections():
        section = text.split(f"\n## {path or 'top level'}\n", 1)[1].split("\n## ", 1)[0]
        for name in model.model_fields:
            assert f"| `{name}` |" in section, f"{path}.{name} is missing"


async def test_committed_openapi_equals_the_served_document(tmp_path: Path) -> None:
    app = build_app(cast(ApiBackend, object()), TokenStore(tmp_path / "tokens.json"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/api/openapi.json")
        assert response.status == 200
        served = await response.json()
    committed = json.loads((REPO / "docs" / "openapi.json").read_text())
    assert committed == served, f"docs/openapi.json is stale: run `{docsgen.REGENERATE}`"
