"""The HTTP API: token roles, JSON errors, open /health on localhost, OpenAPI kept true."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcontrol.api.auth import TokenStore
from callcontrol.api.openapi import OPENAPI
from callcontrol.api.server import ROUTES, TOKENS, build_app
from callcontrol.errors import ApiError, Forbidden, UnknownObject
from callcontrol.numbers import NumberPlan


class FakeBackend:
    def __init__(self) -> None:
        self.links_up = True
        self.actions: list[tuple[str, str, str | None]] = []

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self.links_up, {"ari": {"up": self.links_up}}

    async def find_calls(self, where: Any, limit: int, after: Any
                         ) -> tuple[list[dict[str, Any]], Any]:
        self.last_filter = where
        return [{"call_id": str(i)} for i in range(limit)], None

    async def call_detail(self, call_id: str, as_agent: str | None = None
                          ) -> dict[str, Any] | None:
        return {"call_id": call_id} if call_id == "c1" else None

    def number_plan(self) -> NumberPlan:
        return NumberPlan("39", "")

    async def customer_calls(self, where: Any, limit: int, after: Any
                             ) -> tuple[list[dict[str, Any]], Any]:
        self.last_filter = where
        return [], None

    async def give_disposition(self, call_id: str, code: str, note: str | None, *, by: str,
                               as_agent: str | None) -> dict[str, Any]:
        if call_id != "c1":
            raise UnknownObject("call_not_found", "no such call")
        if as_agent not in (None, "alice"):
            raise Forbidden("forbidden", "not yours")
        return {"call_id": call_id, "code": code, "note": note, "by": by}

    async def open_recording(self, recording_id: str, as_agent: str | None, by: str) -> Any:
        raise UnknownObject("recording_not_found", "no such recording")

    def recording_accessed(self, row: Any, by: str, byte_range: str | None,
                           status: int) -> None:
        raise AssertionError("no recording is ever opened here")

    def flows_status(self) -> dict[str, Any]:
        return {"live": {}}

    def agents(self) -> list[dict[str, Any]]:
        return [{"id": "alice"}]

    def queues(self) -> list[dict[str, Any]]:
        return []

    def agent_action(self, agent_id: str, action: str, reason: str | None) -> dict[str, Any]:
        if agent_id != "alice":
            raise ApiError(404, "agent_not_found", "no such agent")
        self.actions.append((agent_id, action, reason))
        return {"id": agent_id, "state": action}

    def crm_customer(self, account: str) -> dict[str, Any] | None:
        return None

    async def recording_control(self, call_id: str, action: str, by: str,
                                agent_id: str | None = None) -> dict[str, Any]:
        raise UnknownObject("call_not_live", "no call in progress with this id")

    overrides: dict[str, Any]

    def schedule_overrides(self) -> dict[str, Any]:
        return getattr(self, "overrides", {})

    def set_schedule_override(self, name: str, state: str, until: Any, reason: str) -> Any:
        self.overrides = {**self.schedule_overrides(), name: {"state": state, "reason": reason}}
        return self.overrides

    def clear_schedule_override(self, name: str) -> bool:
        return self.schedule_overrides().pop(name, None) is not None

    def schedule_names(self) -> set[str]:
        return {"office", "support", "holidays"}


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    tokens = TokenStore(tmp_path / "tokens.json")
    backend = FakeBackend()
    app = build_app(backend, tokens)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        c.tokens = {
            "admin": tokens.create("a", "admin"),
            "supervisor": tokens.create("s", "supervisor"),
            "alice": tokens.create("t", "agent", "alice"),
        }
        c.backend = backend
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_health_is_open_on_localhost_and_503_when_a_link_is_down(client: Any) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    client.backend.links_up = False
    resp = await client.get("/health")
    assert resp.status == 503


async def test_api_needs_a_token(client: Any) -> None:
    resp = await client.get("/api/calls")
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["id"] == "unauthorized"
    resp = await client.get("/api/calls", headers=auth("not-a-token"))
    assert resp.status == 401


async def test_roles(client: Any) -> None:
    resp = await client.get("/api/calls?limit=3", headers=auth(client.tokens["supervisor"]))
    assert resp.status == 200
    assert len(await resp.json()) == 3
    resp = await client.get("/api/calls", headers=auth(client.tokens["alice"]))
    assert resp.status == 403
    assert (await resp.json())["error"]["id"] == "forbidden"


async def test_agent_token_acts_only_on_its_agent(client: Any) -> None:
    resp = await client.post("/api/agents/alice/pause", json={"reason": "break"},
                             headers=auth(client.tokens["alice"]))
    assert resp.status == 200
    assert client.backend.actions == [("alice", "pause", "break")]
    resp = await client.post("/api/agents/bob/pause", headers=auth(client.tokens["alice"]))
    assert resp.status == 403


async def test_bad_payloads_get_clear_errors(client: Any) -> None:
    admin = auth(client.tokens["admin"])
    resp = await client.post("/api/agents/alice/pause", data="{not json", headers=admin)
    assert resp.status == 400
    assert (await resp.json())["error"]["id"] == "invalid_json"
    resp = await client.post("/api/agents/alice/pause", json={"reasn": "x"}, headers=admin)
    assert (await resp.json())["error"]["id"] == "invalid_body"
    resp = await client.get("/api/calls?limit=abc", headers=admin)
    assert resp.status == 400
    resp = await client.get("/api/calls/zzz", headers=admin)
    assert resp.status == 404
    assert (await resp.json())["error"]["id"] == "call_not_found"
    resp = await client.post("/api/agents/nobody/login", headers=admin)
    assert resp.status == 404
    resp = await client.get("/api/nowhere", headers=admin)
    assert resp.status == 404
    assert "error" in await resp.json()


async def test_tokens_are_stored_hashed(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    token = store.create("x", "admin")
    text = (tmp_path / "t.json").read_text()
    assert token not in text
    assert (tmp_path / "t.json").stat().st_mode & 0o077 == 0
    assert TokenStore(tmp_path / "t.json").lookup(token) is not None
    with pytest.raises(ValueError, match="bound to an agent"):
        store.create("y", "agent")


async def test_a_token_created_while_the_daemon_runs_works_at_once(client: Any) -> None:
    # `callcontrol tokens create` is another process writing the same file (make run creates
    # the demo's admin token after the daemon is up).
    served: TokenStore = client.server.app[TOKENS]
    other = TokenStore(served.path)
    token = other.create("late", "supervisor")
    resp = await client.get("/api/calls", headers=auth(token))
    assert resp.status == 200
    removed = [e for e in json.loads(served.path.read_text()) if e["name"] != "late"]
    served.path.write_text(json.dumps(removed))
    resp = await client.get("/api/calls", headers=auth(token))
    assert resp.status == 401


def _openapi_paths_for(route_path: str) -> list[str]:
    match = re.search(r"\{(\w+):([\w|]+)\}", route_path)
    if not match:
        return [route_path]
    return [route_path.replace(match.group(0), choice) for choice in match.group(2).split("|")]


def test_openapi_names_exactly_the_routes() -> None:
    served = {
        (path, method.lower())
        for method, route, _ in ROUTES
        for path in _openapi_paths_for(route)
    }
    documented = {(path, method) for path, ops in OPENAPI["paths"].items() for method in ops}
    assert served == documented


async def test_schedule_overrides_need_a_supervisor_and_a_valid_body(client: Any) -> None:
    sup = auth(client.tokens["supervisor"])
    resp = await client.post("/api/schedules/office/override", json={"state": "closed"},
                             headers=auth(client.tokens["alice"]))
    assert resp.status == 403
    resp = await client.post("/api/schedules/office/override", json={"state": "shut"},
                             headers=sup)
    assert resp.status == 400
    resp = await client.post("/api/schedules/office/override",
                             json={"state": "closed", "reason": "flood"}, headers=sup)
    assert resp.status == 200
    assert (await resp.json())["office"]["state"] == "closed"
    resp = await client.get("/api/schedules", headers=sup)
    assert "office" in await resp.json()
    resp = await client.delete("/api/schedules/office/override", headers=sup)
    assert resp.status == 200
    resp = await client.delete("/api/schedules/office/override", headers=sup)
    assert resp.status == 404
