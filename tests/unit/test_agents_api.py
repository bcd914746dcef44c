"""Agents managed through the HTTP API: validation, roles, errors; the directory on a real
SQLite store; the PJSIP include file; queue statistics read back from the store."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from callcontrol.acd.directory import (
    AgentBusy,
    AgentDirectory,
    AgentExists,
    AgentNotFound,
    AgentReadOnly,
    EndpointInUse,
    NewAgent,
)
from callcontrol.acd.reports import queue_period_stats
from callcontrol.api.auth import TokenStore
from callcontrol.api.server import build_app
from callcontrol.config import AgentConfig, Config, OutboundAllow, QueueConfig
from callcontrol.errors import ApiError, ConfigError
from callcontrol.pbx.agents_conf import AgentsInclude, render_agents_include
from callcontrol.pbx.settings import SipAccount
from callcontrol.store.db import create_engine, session_factory
from callcontrol.store.migrations import upgrade
from callcontrol.store.tables import AgentEventRow, CallEventRow
from tests.unit.test_api import FakeBackend

PASSWORD = "s3cret-Pass_word"


class AgentsBackend(FakeBackend):
    """The fake backend with an in-memory directory and call controls."""

    def __init__(self) -> None:
        super().__init__()
        self.defined: dict[str, dict[str, Any]] = {
            "alice": {"id": "alice", "endpoint": "agent-alice", "source": "config"}}
        self.passwords: dict[str, str] = {}
        self.controls: list[tuple[str, str, str | None]] = []
        self.on_call = {"alice"}
        self.stats_asked: list[tuple[str, datetime, datetime]] = []

    def agent_detail(self, agent_id: str) -> dict[str, Any]:
        if agent_id not in self.defined:
            raise AgentNotFound(f"no agent {agent_id!r}")
        return self.defined[agent_id]

    async def create_agent(self, new: NewAgent) -> dict[str, Any]:
        if new.id in self.defined:
            raise AgentExists(f"agent {new.id!r} already exists")
        self.passwords[new.id] = new.password.get_secret_value()
        self.defined[new.id] = {"id": new.id, "name": new.name, "endpoint": new.endpoint,
                                "skills": dict(new.skills), "queues": list(new.queues),
                                "wrap_up": new.wrap_up, "source": "api"}
        return self.defined[new.id]

    async def update_agent(self, agent_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        if self.defined.get(agent_id, {}).get("source") == "config":
            raise AgentReadOnly("in config")
        agent = self.agent_detail(agent_id)
        for key, value in changes.items():
            if key == "password":
                self.passwords[agent_id] = value.get_secret_value()
            else:
                agent[key] = value
        return agent

    async def delete_agent(self, agent_id: str) -> None:
        self.agent_detail(agent_id)
        del self.defined[agent_id]

    def agent_call_control(self, agent_id: str, action: str, target: str | None
                           ) -> dict[str, Any]:
        self.agent_detail(agent_id)
        if agent_id not in self.on_call:
            raise ApiError(409, "agent_not_on_call", "not on a call")
        self.controls.append((agent_id, action, target))
        return {"id": agent_id}

    def queue_names(self) -> list[str]:
        return ["billing", "support"]

    async def queue_stats(self, queue: str, start: datetime, end: datetime) -> dict[str, Any]:
        self.stats_asked.append((queue, start, end))
        return {"queue": queue, "offered": 0}


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    tokens = TokenStore(tmp_path / "tokens.json")
    backend = AgentsBackend()
    app = build_app(backend, tokens, outbound=OutboundAllow(agent=["+3906*"]))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        c.backend = backend
        c.admin = {"Authorization": f"Bearer {tokens.create('a', 'admin')}"}
        c.supervisor = {"Authorization": f"Bearer {tokens.create('s', 'supervisor')}"}
        c.alice = {"Authorization": f"Bearer {tokens.create('t', 'agent', 'alice')}"}
        yield c


def new_agent(**override: Any) -> dict[str, Any]:
    body = {"id": "bob", "name": "Bob", "endpoint": "agent-bob", "password": PASSWORD,
            "skills": {"billing": 3}, "queues": ["billing"], "wrap_up": 5}
    body.update(override)
    return body


async def error_of(resp: Any) -> dict[str, Any]:
    body = await resp.json()
    return body["error"]  # type: ignore[no-any-return]


async def test_admin_creates_an_agent_and_the_password_never_comes_back(client: Any) -> None:
    resp = await client.post("/api/agents", json=new_agent(), headers=client.admin)
    assert resp.status == 201
    text = await resp.text()
    assert PASSWORD not in text
    assert json.loads(text)["source"] == "api"
    assert client.backend.passwords == {"bob": PASSWORD}
    resp = await client.get("/api/agents/bob", headers=client.supervisor)
    assert resp.status == 200
    assert PASSWORD not in await resp.text()


async def test_only_admin_manages_agents(client: Any) -> None:
    for headers in (client.supervisor, client.alice):
        resp = await client.post("/api/agents", json=new_agent(), headers=headers)
        assert resp.status == 403
        resp = await client.patch("/api/agents/alice", json={"name": "x"}, headers=headers)
        assert resp.status == 403
        resp = await client.delete("/api/agents/alice", headers=headers)
        assert resp.status == 403
    resp = await client.post("/api/agents", json=new_agent())
    assert resp.status == 401


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"id": "bad id!"}, "id"),
        ({"endpoint": "agent;x"}, "endpoint"),
        ({"password": "short"}, "password"),
        ({"password": "has;semicolon"}, "password"),
        ({"password": "has space inside"}, "password"),
        ({"skills": {"billing": "high"}}, "skills.billing"),
        ({"skills": {"billing": -1}}, "skills.billing"),
        ({"queues": ["nowhere"]}, "queues"),
        ({"wrap_up": -2}, "wrap_up"),
        ({"name": ""}, "name"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_invalid_bodies_name_the_field(client: Any, override: dict[str, Any],
                                             field: str) -> None:
    resp = await client.post("/api/agents", json=new_agent(**override), headers=client.admin)
    assert resp.status == 400
    error = await error_of(resp)
    assert error["id"] == "invalid_body"
    assert field in error["details"]["fields"]
    assert PASSWORD not in json.dumps(error)
    assert client.backend.passwords == {}


async def test_missing_fields_and_bad_json(client: Any) -> None:
    resp = await client.post("/api/agents", json={"id": "bob"}, headers=client.admin)
    fields = (await error_of(resp))["details"]["fields"]
    assert {"name", "endpoint", "password"} <= set(fields)
    resp = await client.post("/api/agents", data="{oops", headers=client.admin)
    assert (await error_of(resp))["id"] == "invalid_json"
    resp = await client.post("/api/agents", json=["bob"], headers=client.admin)
    assert (await error_of(resp))["id"] == "invalid_body"


async def test_conflicts_and_missing_agents(client: Any) -> None:
    resp = await client.post("/api/agents", json=new_agent(id="alice"), headers=client.admin)
    assert resp.status == 409
    assert (await error_of(resp))["id"] == "agent_exists"
    resp = await client.get("/api/agents/nobody", headers=client.admin)
    assert resp.status == 404
    assert (await error_of(resp))["id"] == "agent_not_found"
    resp = await client.patch("/api/agents/nobody", json={"name": "x"}, headers=client.admin)
    assert (await error_of(resp))["id"] == "agent_not_found"
    resp = await client.delete("/api/agents/nobody", headers=client.admin)
    assert resp.status == 404
    resp = await client.patch("/api/agents/alice", json={"name": "x"}, headers=client.admin)
    assert resp.status == 409
    assert (await error_of(resp))["id"] == "agent_in_config"


async def test_patch_changes_only_editable_fields(client: Any) -> None:
    await client.post("/api/agents", json=new_agent(), headers=client.admin)
    resp = await client.patch("/api/agents/bob", json={"endpoint": "other"},
                              headers=client.admin)
    assert resp.status == 400
    assert "endpoint" in (await error_of(resp))["details"]["fields"]
    resp = await client.patch("/api/agents/bob", json={}, headers=client.admin)
    assert resp.status == 400
    resp = await client.patch("/api/agents/bob", json={"queues": None}, headers=client.admin)
    assert resp.status == 400
    resp = await client.patch("/api/agents/bob",
                              json={"queues": ["support"], "password": "n3w-Password",
                                    "wrap_up": None},
                              headers=client.admin)
    assert resp.status == 200
    body = await resp.json()
    assert body["queues"] == ["support"]
    assert body["wrap_up"] is None
    assert client.backend.passwords["bob"] == "n3w-Password"
    resp = await client.delete("/api/agents/bob", headers=client.admin)
    assert resp.status == 200
    assert "bob" not in client.backend.defined


async def test_agent_reads_only_itself(client: Any) -> None:
    await client.post("/api/agents", json=new_agent(), headers=client.admin)
    assert (await client.get("/api/agents/alice", headers=client.alice)).status == 200
    assert (await client.get("/api/agents/bob", headers=client.alice)).status == 403


async def test_call_controls_roles_and_targets(client: Any) -> None:
    await client.post("/api/agents", json=new_agent(), headers=client.admin)
    resp = await client.post("/api/agents/alice/hold", headers=client.alice)
    assert resp.status == 200
    resp = await client.post("/api/agents/alice/unhold", headers=client.supervisor)
    assert resp.status == 200
    resp = await client.post("/api/agents/bob/hold", headers=client.alice)
    assert resp.status == 403
    resp = await client.post("/api/agents/bob/hold", headers=client.supervisor)
    assert resp.status == 409
    assert (await error_of(resp))["id"] == "agent_not_on_call"
    for to in ("queue:support", "agent:bob", "number:+390612345678"):
        resp = await client.post("/api/agents/alice/transfer", json={"to": to},
                                 headers=client.alice)
        assert resp.status == 200, await resp.text()
    assert client.backend.controls == [
        ("alice", "hold", None), ("alice", "unhold", None),
        ("alice", "transfer", "queue:support"), ("alice", "transfer", "agent:bob"),
        ("alice", "transfer", "number:+390612345678"),
    ]
    for bad in ({"to": "queue:nowhere"}, {"to": "number:0612"}, {"to": "agent:alice"},
                {"to": "fax:1"}, {}, {"to": "queue:support", "x": 1}):
        resp = await client.post("/api/agents/alice/transfer", json=bad, headers=client.alice)
        assert resp.status == 400, bad
        assert (await error_of(resp))["id"] == "invalid_body"
    resp = await client.post("/api/agents/alice/hold", json={"x": 1}, headers=client.alice)
    assert resp.status == 400
    resp = await client.post("/api/agents/nobody/hold", headers=client.admin)
    assert resp.status == 404


async def test_queue_stats_parameters(client: Any) -> None:
    url = "/api/queues/billing/stats?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00%2B01:00"
    resp = await client.get(url, headers=client.supervisor)
    assert resp.status == 200
    queue, start, end = client.backend.stats_asked[-1]
    assert (queue, start) == ("billing", datetime(2026, 1, 1, tzinfo=UTC))
    assert end == datetime(2026, 1, 1, 23, tzinfo=UTC)
    resp = await client.get("/api/queues/billing/stats", headers=client.supervisor)
    assert resp.status == 200
    _, start, end = client.backend.stats_asked[-1]
    assert end - start == timedelta(days=1)
    assert (await client.get(url, headers=client.alice)).status == 403
    for bad in ("from=yesterday", "from=2026-01-01T00:00:00",
                "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"):
        resp = await client.get(f"/api/queues/billing/stats?{bad}", headers=client.supervisor)
        assert resp.status == 400, bad
        assert (await error_of(resp))["id"] == "invalid_parameter"
    resp = await client.get("/api/queues/nowhere/stats", headers=client.supervisor)
    assert resp.status == 404
    assert (await error_of(resp))["id"] == "queue_not_found"


# -- the directory on a real store ------------------------------------------------------------


class FakeRoster:
    def __init__(self) -> None:
        self.agents: dict[str, AgentConfig] = {}
        self.busy: set[str] = set()

    async def add_agent(self, config: AgentConfig) -> None:
        self.agents[config.id] = config

    def update_agent(self, config: AgentConfig) -> None:
        self.agents[config.id] = config

    def remove_agent(self, agent_id: str) -> None:
        if agent_id in self.busy:
            raise AgentReadOnly("busy")  # any CallControlError
        del self.agents[agent_id]


class FakeHeadsets:
    def __init__(self) -> None:
        self.applied: list[dict[str, str]] = []
        self.fail = False

    async def __call__(self, accounts: Mapping[str, str]) -> None:
        if self.fail:
            raise ConfigError("pbx refused")
        self.applied.append(dict(accounts))


def _config(tmp_path: Path) -> Config:
    return Config.model_validate({
        "base_dir": str(tmp_path),
        "asterisk": {"ari": {"url": "http://127.0.0.1:1", "user": "u", "password": {"env": "X"},
                             "app": "a"},
                     "ami": {"user": "u", "password": {"env": "X"}}},
        "agents": [{"id": "alice", "name": "Alice", "endpoint": "agent-alice",
                    "password": {"env": "X"}}],
        "callers": [{"id": "caller", "password": {"env": "X"}}],
        "queues": {"billing": {}},
    })


@pytest.fixture
async def directory_parts(tmp_path: Path) -> Any:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        yield _config(tmp_path), engine
    finally:
        await engine.dispose()


def _new(**override: Any) -> NewAgent:
    values: dict[str, Any] = {"id": "bob", "name": "Bob", "endpoint": "agent-bob",
                              "password": SecretStr(PASSWORD), "skills": {"billing": 2},
                              "queues": ["billing"], "wrap_up": None}
    values.update(override)
    return NewAgent(**values)


async def test_directory_stores_rows_and_secret_files(directory_parts: Any,
                                                      tmp_path: Path) -> None:
    config, engine = directory_parts
    roster, headsets = FakeRoster(), FakeHeadsets()
    directory = AgentDirectory(config, engine, roster, headsets)
    await directory.start()
    described = await directory.create(_new())
    assert described["source"] == "api"
    assert PASSWORD not in json.dumps(described)
    secret = tmp_path / "var" / "agent-secrets" / "bob"
    assert secret.read_text().strip() == PASSWORD
    assert secret.stat().st_mode & 0o077 == 0
    assert headsets.applied[-1] == {"agent-bob": PASSWORD}
    assert roster.agents["bob"].password.value.get_secret_value() == PASSWORD
    db_text = (tmp_path / "store.db").read_bytes()
    assert PASSWORD.encode() not in db_text
    with pytest.raises(AgentExists):
        await directory.create(_new(endpoint="other"))
    with pytest.raises(AgentExists):
        await directory.create(_new(id="alice", endpoint="other"))
    with pytest.raises(EndpointInUse):
        await directory.create(_new(id="carol", endpoint="agent-alice"))
    with pytest.raises(EndpointInUse):
        await directory.create(_new(id="carol", endpoint="caller"))
    with pytest.raises(AgentReadOnly):
        await directory.update("alice", {"name": "x"})

    await directory.update("bob", {"name": "Robert", "password": SecretStr("n3w-Password")})
    assert headsets.applied[-1] == {"agent-bob": "n3w-Password"}
    assert roster.agents["bob"].name == "Robert"

    # a restarted daemon loads the agent back from its row and secret file
    roster2 = FakeRoster()
    again = AgentDirectory(config, engine, roster2, FakeHeadsets())
    await again.start()
    assert roster2.agents["bob"].password.value.get_secret_value() == "n3w-Password"
    assert again.describe("bob")["name"] == "Robert"

    roster.busy.add("bob")
    with pytest.raises(AgentBusy):
        await directory.delete("bob")
    roster.busy.clear()
    await directory.delete("bob")
    assert not secret.exists()
    assert headsets.applied[-1] == {}
    with pytest.raises(AgentNotFound):
        directory.describe("bob")


async def test_directory_rolls_back_a_create_the_pbx_refused(directory_parts: Any,
                                                             tmp_path: Path) -> None:
    config, engine = directory_parts
    roster, headsets = FakeRoster(), FakeHeadsets()
    directory = AgentDirectory(config, engine, roster, headsets)
    headsets.fail = True
    with pytest.raises(ConfigError):
        await directory.create(_new())
    assert not (tmp_path / "var" / "agent-secrets" / "bob").exists()
    assert roster.agents == {}
    headsets.fail = False
    await directory.create(_new())  # the row was removed: the id is free again
    assert "bob" in roster.agents


def test_include_file_uses_the_templates_and_checks_values(tmp_path: Path) -> None:
    text = render_agents_include([SipAccount("agent-bob", PASSWORD)])
    assert "[agent-bob](callcontrol-endpoint)" in text
    assert "[agent-bob](callcontrol-auth)" in text
    assert "[agent-bob](callcontrol-aor)" in text
    assert f"password = {PASSWORD}" in text
    with pytest.raises(ConfigError):
        render_agents_include([SipAccount("agent bob", PASSWORD)])
    with pytest.raises(ConfigError):
        render_agents_include([SipAccount("agent-bob", "pw;x")])


async def test_include_file_is_private_and_reloads_only_on_change(tmp_path: Path) -> None:
    reloads: list[int] = []

    async def reload() -> None:
        reloads.append(1)

    include = AgentsInclude(tmp_path, reload)
    await include.apply([SipAccount("agent-bob", PASSWORD)])
    await include.apply([SipAccount("agent-bob", PASSWORD)])
    assert len(reloads) == 1
    assert include.path.stat().st_mode & 0o077 == 0
    await include.apply([SipAccount("agent-bob", PASSWORD)], force=True)
    assert len(reloads) == 2


async def test_queue_stats_are_read_back_from_the_store(directory_parts: Any) -> None:
    _, engine = directory_parts
    t0 = datetime(2026, 3, 1, 9, tzinfo=UTC)

    def call(n: int, kind: str, seconds: float, **data: Any) -> CallEventRow:
        return CallEventRow(record_id=f"r{n}-{kind}", call_id=f"c{n}",
                            at=t0 + timedelta(seconds=seconds), kind=kind,
                            data={"queue": "billing", "entry_id": f"e{n}", **data})

    rows: list[Any] = [
        call(1, "queue_entered", 0), call(1, "queue_left", 10, reason="answered", wait_s=10),
        call(1, "agent_disconnected", 70, agent_id="alice", by="agent", talk_s=60, hold_s=0),
        call(2, "queue_entered", 5), call(2, "queue_left", 65, reason="abandoned", wait_s=60),
        call(3, "queue_entered", 6), call(3, "queue_left", 8, reason="abandoned", wait_s=2),
        call(4, "queue_entered", 3600 * 2),  # after the period
        AgentEventRow(record_id="a1", agent_id="alice", at=t0 + timedelta(seconds=80),
                      kind="state", data={"from": "wrap_up", "to": "available", "seconds": 10,
                                          "call_id": "c1", "queue": "billing"}),
    ]
    async with session_factory(engine)() as session, session.begin():
        session.add_all(rows)
    stats = await queue_period_stats(engine, "billing", QueueConfig(), t0,
                                     t0 + timedelta(hours=1), timedelta(hours=4))
    assert (stats.offered, stats.answered, stats.abandoned, stats.short_abandoned) == (3, 1, 1, 1)
    assert stats.service_level == 0.5
    assert stats.aht_s == 70.0
