"""``tokens list`` and ``tokens revoke``: a token revoked while the API runs is refused next."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcontrol.api.auth import TokenStore
from callcontrol.api.server import build_app
from callcontrol.cli import main
from tests.unit.test_api import FakeBackend, auth

CONFIG = """\
asterisk:
  ari: {{password: {{env: TEST_ARI_PASSWORD}}}}
  ami: {{password: {{env: TEST_AMI_PASSWORD}}}}
http:
  tokens_file: {tokens}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "callcontrol.yaml"
    path.write_text(CONFIG.format(tokens=tmp_path / "tokens.json"))
    return path


def test_list_shows_name_role_agent_and_created_never_the_token(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    secret = [store.create("ops", "admin"), store.create("alice-phone", "agent", "alice")]
    assert main(["--config", str(config), "tokens", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["name", "role", "agent", "created", "(UTC)"]
    assert lines[1].split()[:3] == ["ops", "admin", "-"]
    assert lines[2].split()[:3] == ["alice-phone", "agent", "alice"]
    assert main(["--config", str(config), "tokens", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["name"], t["role"], t["agent_id"]) for t in listed] == [
        ("ops", "admin", None), ("alice-phone", "agent", "alice")]
    assert all(t["created_at"].endswith("+00:00") for t in listed)
    text = out + json.dumps(listed) + (tmp_path / "tokens.json").read_text()
    assert not any(token in text for token in secret)


def test_revoking_an_unknown_name_fails(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "tokens", "revoke", "nobody"]) == 2
    assert "no token named 'nobody'" in capsys.readouterr().err


async def test_a_token_revoked_while_the_api_runs_is_refused_on_the_next_request(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    served = TokenStore(tmp_path / "tokens.json")
    keep = served.create("keep", "supervisor")
    gone = served.create("gone", "supervisor")
    async with TestClient(TestServer(build_app(FakeBackend(), served), host="127.0.0.1")) as c:
        assert (await c.get("/api/calls", headers=auth(gone))).status == 200
        assert main(["--config", str(config), "tokens", "revoke", "gone"]) == 0  # the CLI
        assert "revoked 1 token(s) named 'gone'" in capsys.readouterr().out
        assert (await c.get("/api/calls", headers=auth(gone))).status == 401
        assert (await c.get("/api/calls", headers=auth(keep))).status == 200
    assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == oct(0o600)

