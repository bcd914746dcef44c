"""An agent created through the HTTP API gets a PJSIP headset in the running Asterisk (no
pjsip.conf edit, no restart), registers with its own secret, is rung by the ACD, answers, and
its call is held, unheld and counted in the queue's statistics; deleting it removes the
endpoint again. Real Asterisk, the daemon as a child process, pjsua2 peers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from callcontrol.api.auth import TokenStore
from callcontrol.config import load_config
from callcontrol.pbx.ports import free_port
from callcontrol.sipua.client import SipPeer, SipPeerError
from callcontrol_testing.daemon import DaemonApi, DaemonProcess, write_config
from callcontrol_testing.testbed import PbxTestbed
from callcontrol_testing.waiting import eventually

FLOWS = Path(__file__).parent / "flows_agents_api"


@pytest.fixture
async def daemon(pbx: PbxTestbed, tmp_path: Path) -> AsyncIterator[tuple[DaemonProcess, DaemonApi]]:
    tokens_file = tmp_path / "tokens.json"
    token = TokenStore(tokens_file).create("test-admin", "admin")
    config = write_config(pbx.config_file, tmp_path / "daemon.yaml", {
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
                     "journal_dir": str(tmp_path / "journal")},
        "http": {"port": free_port(), "tokens_file": str(tokens_file)},
        "flows": {"dir": str(FLOWS), "routes": {"300": "agents_api"}, "watch": False},
        "queues": {"apiq": {"ring_timeout": 8, "wrap_up": 0}},
        "acd": {"agent_secrets_dir": str(tmp_path / "agent-secrets")},
        "run": {"pid_file": str(tmp_path / "run" / "daemon.pid"), "shutdown_grace": 2.0},
    })
    port = load_config(config).http.port
    process = DaemonProcess(config, port, tmp_path / "daemon.log")
    await process.start(timeout=40)
    try:
        async with aiohttp.ClientSession() as session:
            yield process, DaemonApi(session, process.url, token)
    finally:
        await process.stop()


async def test_agent_created_through_the_api_registers_and_takes_a_call(
    pbx: PbxTestbed, daemon: tuple[DaemonProcess, DaemonApi], tmp_path: Path
) -> None:
    process, api = daemon
    password = secrets.token_urlsafe(16)
    endpoint = f"agent-api-{secrets.token_hex(3)}"
    started = datetime.now(UTC)
    status, body = await api("POST", "/api/agents", {
        "id": "apiagent", "name": "API Agent", "endpoint": endpoint, "password": password,
        "skills": {"billing": 2}, "queues": ["apiq"],
    })
    assert status == 201, body
    assert body["source"] == "api" and body["state"] == "logged_out"
    assert password not in str(body)
    assert password not in process.log_tail(400)
    pjsip = await pbx.instance.cli(f"pjsip show endpoint {endpoint}")
    assert "Unable to find object" not in pjsip, pjsip

    async with SipPeer(name="api-agent", log_path=tmp_path / "agent.log") as agent:
        # a wrong secret is refused: the endpoint really authenticates
        with pytest.raises(SipPeerError):
            await agent.register(endpoint, "wrong-" + password, pbx.sip_host, pbx.sip_port,
                                 timeout=10)
    async with SipPeer(name="api-agent2", log_path=tmp_path / "agent2.log") as agent, \
            SipPeer(name="api-caller2", log_path=tmp_path / "caller2.log") as caller:
        await agent.register(endpoint, password, pbx.sip_host, pbx.sip_port)
        await agent.set_auto_answer(True)
        status, body = await api("POST", "/api/agents/apiagent/login")
        assert status == 200, body

        async def available() -> Any:
            _, agent_now = await api("GET", "/api/agents/apiagent")
            return agent_now["state"] == "available"

        await eventually(available, 15, "the API agent available (headset registered)")
        status, body = await api("POST", "/api/agents/apiagent/hold")
        assert status == 409 and body["error"]["id"] == "agent_not_on_call", body

        await caller.use_account(pbx.caller.username, pbx.caller.password, pbx.sip_host,
                                 pbx.sip_port)
        call = await caller.call(f"sip:300@{pbx.sip_host}:{pbx.sip_port}")
        await agent.wait_for("incoming", timeout=15)
        await agent.wait_for("confirmed", timeout=10)
        await caller.wait_for("confirmed", timeout=10, call_id=call)

        async def on_call() -> Any:
            _, agent_now = await api("GET", "/api/agents/apiagent")
            return agent_now["state"] == "on_call"

        await eventually(on_call, 10, "the API agent on_call")
        call_id = (await api("GET", "/api/agents/apiagent"))[1]["call_id"]

        def timeline_has(kind: str) -> Callable[[], Awaitable[Any]]:
            async def check() -> Any:
                _, detail = await api("GET", f"/api/calls/{call_id}")
                return any(e["kind"] == kind for e in detail.get("timeline", []))
            return check

        status, body = await api("POST", "/api/agents/apiagent/hold")
        assert status == 200, body
        await eventually(timeline_has("hold"), 10, "the caller put on hold")
        status, body = await api("POST", "/api/agents/apiagent/unhold")
        assert status == 200, body
        await eventually(timeline_has("unhold"), 10, "the caller taken off hold")
        await caller.hangup(call)
        await caller.wait_for("disconnected", timeout=10, call_id=call)
        await agent.wait_for("disconnected", timeout=10)

        async def answered() -> Any:
            end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
            _, stats = await api("GET", f"/api/queues/apiq/stats?from="
                                        f"{started.isoformat().replace('+', '%2B')}"
                                        f"&to={end.replace('+', '%2B')}")
            return stats if stats.get("answered") == 1 else None

        stats = await eventually(answered, 10, "the answered call in the period statistics")
        assert stats["offered"] == 1

        await eventually(available, 10, "the API agent available after the call")
        status, body = await api("DELETE", "/api/agents/apiagent")
        assert status == 200, body
    pjsip = await pbx.instance.cli(f"pjsip show endpoint {endpoint}")
    assert "Unable to find object" in pjsip, pjsip
    status, body = await api("GET", "/api/agents/apiagent")
    assert status == 404 and body["error"]["id"] == "agent_not_found"
