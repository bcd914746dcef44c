"""The ACD test bed: one Asterisk, one daemon (child process) with the agents and queues of the
ACD scenarios, pjsua2 headsets and callers, and read access to the daemon's database (SQLite or
PostgreSQL, whichever store the module runs on) and API.

Every scenario has its own queue and agents (see :data:`AGENTS` and :data:`QUEUES`), so the
daemon runs once for the whole module and scenarios never see each other's calls. The flow
``flows_acd/acd.yaml`` sends each extension to one queue step and tags the call with the exit
taken (``exit_timeout``, ``exit_no_agents``, ``exit_full``, ``exit_after``);
``flows_acd/acd_more.yaml`` does the same for the scenarios of tests/integration/
test_acd_more_live.py (:data:`MORE_AGENTS`, :data:`MORE_QUEUES`, :data:`MORE_EXTENSIONS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlmodel import col

from callcontrol import audio
from callcontrol.pbx.testbed import PbxTestbed, start_testbed
from callcontrol.sipua.client import PeerEvent, SipPeer
from callcontrol.store.db import create_engine, session_factory
from callcontrol.store.queries import call_timeline
from callcontrol.store.tables import AgentEventRow, CallEventRow, CallRow
from callcontrol.testing.daemon import DaemonApi, DaemonProcess, write_config
from callcontrol.testing.waiting import eventually

FLOWS = Path(__file__).parent / "flows_acd"
CALLER_HZ = 440
AGENT_HZ = 1000

AGENTS: dict[str, dict[str, Any]] = {
    "b1": {"queues": ["li"], "wrap_up": 3},  # basic call, longest idle, wrap-up
    "b2": {"queues": ["li"]},
    "s1": {"queues": ["sk"], "skills": {"de": 3}},  # skills
    "s2": {"queues": ["sk"], "skills": {"de": 1, "en": 2}},
    "p1": {"queues": ["prio"]},  # priority
    "n1": {"queues": ["rna"]},  # ring no-answer, auto-pause
    "n2": {"queues": ["rna"]},
    "u1": {"queues": ["nr"]},  # never rung: unregistered
    "u2": {"queues": ["nr"]},  # never rung: paused
    "u3": {"queues": ["nr"]},  # never rung: logged out
    "u4": {"queues": ["nr"]},  # takes every call of nr
    "r1": {"queues": ["race"]},  # races
    "h1": {"queues": ["sh1", "sh2"]},  # two queues sharing agents
    "h2": {"queues": ["sh1", "sh2"]},
    "e1": {"queues": ["mw", "full"]},  # exits (kept paused: staffed, never free)
    "e2": {"queues": ["empty"]},  # exits (kept logged out)
    "c1": {"queues": ["cb"]},  # callback
    "f1": {"queues": []},  # feature codes
    "t1": {"queues": ["st"]},  # statistics
    "t2": {"queues": ["st"]},
    "y1": {"queues": []},  # a second caller identity: a headset calling the hotline
    "d1": {"queues": [], "wrap_up": 1},  # reached by a flow's dial step
}

MORE_AGENTS: dict[str, dict[str, Any]] = {
    "x1": {"queues": ["xa"], "wrap_up": 2},  # blind transfer to another queue ...
    "x2": {"queues": ["xb"]},  # ... whose agent takes the caller
    "x4": {"queues": ["xc"], "wrap_up": 2},  # blind transfer to another agent ...
    "x3": {"queues": [], "wrap_up": 1},  # ... this one
    "k1": {"queues": ["ho"]},  # hold / unhold
    "g1": {"queues": ["rr"]},  # round_robin (member order g1, g2, g3)
    "g2": {"queues": ["rr"]},
    "g3": {"queues": ["rr"]},
    "w1": {"queues": ["fc"]},  # fewest_calls
    "w2": {"queues": ["fc"]},
    "w3": {"queues": ["fc"]},
    "z1": {"queues": ["rnd"]},  # random (seeded: RANDOM_SEED)
    "z2": {"queues": ["rnd"]},
    "z3": {"queues": ["rnd"]},
    "a1": {"queues": ["an"]},  # position / estimated wait announcements
    "v1": {"queues": ["sv"]},  # statistics through GET /api/queues/{name}/stats
    "o1": {"queues": ["ob"]},  # the toll-fraud guard: transfers to outside numbers
}

MORE_QUEUES: dict[str, dict[str, Any]] = {
    "xa": {"ring_timeout": 5, "wrap_up": 0.5},
    "xb": {"ring_timeout": 5, "wrap_up": 0.5},
    "xc": {"ring_timeout": 5, "wrap_up": 0.5},
    "ho": {"ring_timeout": 5, "wrap_up": 0.5},
    "rr": {"strategy": "round_robin", "ring_timeout": 5, "wrap_up": 0},
    "fc": {"strategy": "fewest_calls", "ring_timeout": 5, "wrap_up": 0},
    # a short wrap-up: a headset reports a call ended once its recording is on disk, which can
    # come after the next call rang when the agent is offered again at once
    "rnd": {"strategy": "random", "ring_timeout": 5, "wrap_up": 0.5},
    "an": {"announce_position": 15, "ring_timeout": 5, "wrap_up": 0},
    "sv": {"max_wait": 4, "max_length": 2, "short_abandon": 1.5, "service_level": 2,
           "ring_timeout": 5, "wrap_up": 1},
    "ob": {"ring_timeout": 5, "wrap_up": 0.5},
}

MORE_EXTENSIONS = {
    "xa": "230", "xc": "231", "ho": "232", "rr": "233", "fc": "234", "rnd": "235", "an": "236",
    "sv": "237", "ob": "238",
}

OUTBOUND_ALLOW = {"agent": ["+3906*"], "flows": ["+1555*"]}
"""The bed's toll-fraud guard (``security.outbound_allow``): agents may transfer callers to
Rome numbers only (supervisors and admins too: nothing of their own); the flow's ``dial`` step
may call +1555... (it has no trunk: the dial is refused for that)."""
AGENT_TOKENS = ("o1",)
"""Agents whose own API token the bed creates (:attr:`AcdBed.agent_tokens`)."""

RANDOM_SEED = 4
"""The seed of the daemon's ``random`` strategy (``acd.random_seed``)."""

QUEUES: dict[str, dict[str, Any]] = {
    "li": {"ring_timeout": 3, "wrap_up": 1},
    "sk": {"strategy": "skills", "ring_timeout": 3, "wrap_up": 1},
    "prio": {"ring_timeout": 3, "wrap_up": 1},
    "rna": {"ring_timeout": 2, "wrap_up": 0.5, "max_no_answer": 3},
    "nr": {"ring_timeout": 3, "wrap_up": 0.5},
    "race": {"ring_timeout": 10, "wrap_up": 0.5},
    "sh1": {"ring_timeout": 2, "wrap_up": 0.5, "max_no_answer": 0},
    "sh2": {"ring_timeout": 2, "wrap_up": 0.5, "max_no_answer": 0},
    "mw": {"max_wait": 2},
    "full": {"max_length": 1},
    "empty": {},
    "cb": {"ring_timeout": 5, "wrap_up": 1, "callback_confirm_timeout": 8},
    "st": {"max_wait": 6, "short_abandon": 2, "service_level": 10, "ring_timeout": 3,
           "wrap_up": 0.5},
}

EXTENSIONS = {
    "li": "201", "sk_de": "202", "sk_en": "203", "prio_a": "204", "prio_b": "205",
    "prio_vip": "206", "rna": "207", "nr": "208", "race": "209", "sh1": "210", "sh2": "211",
    "mw": "212", "full": "213", "empty": "214", "cb": "215", "st": "216",
    "dial_agent": "217", "dial_number": "218",
}


@dataclass
class Row:
    """One call_events / agent_events row."""

    owner: str  # call id or agent id
    at: datetime
    kind: str
    data: dict[str, Any]


class AcdBed:
    """The running bed (see the module docstring)."""

    def __init__(self, pbx: PbxTestbed, daemon: DaemonProcess, token: str, db_url: str,
                 work: Path, agent_tokens: dict[str, str] | None = None) -> None:
        self.pbx = pbx
        self.daemon = daemon
        self.token = token
        self.agent_tokens = agent_tokens or {}
        """Agent id -> that agent's own API token (:data:`AGENT_TOKENS`)."""
        self.db = create_engine(db_url)
        self.work = work
        self.caller_wav = audio.make_tone_wav(work / "caller-tone.wav", CALLER_HZ, 2.0)
        self.agent_wav = audio.make_tone_wav(work / "agent-tone.wav", AGENT_HZ, 2.0)
        self._session = aiohttp.ClientSession()
        self.api = DaemonApi(self._session, daemon.url, token, timeout=5)
        """``(status, json)`` of one API request with the admin token."""
        self._peers = 0

    async def close(self) -> None:
        """Close the HTTP session and the database connections."""
        await self._session.close()
        await self.db.dispose()

    # -- HTTP API -----------------------------------------------------------------------------

    def api_as(self, token: str) -> DaemonApi:
        """The API with another token (e.g. an agent's own)."""
        return DaemonApi(self._session, self.daemon.url, token, timeout=5)

    async def agent(self, agent_id: str) -> dict[str, Any]:
        """One agent as ``GET /api/agents`` shows it."""
        status, agents = await self.api("GET", "/api/agents")
        assert status == 200, agents
        return next(a for a in agents if a["id"] == agent_id)

    async def queue(self, name: str) -> dict[str, Any]:
        """One queue as ``GET /api/queues`` shows it."""
        status, queues = await self.api("GET", "/api/queues")
        assert status == 200, queues
        return next(q for q in queues if q["name"] == name)

    async def action(self, agent_id: str, action: str, reason: str | None = None) -> None:
        """POST an agent action and require success."""
        body = {"reason": reason} if reason else None
        status, answer = await self.api("POST", f"/api/agents/{agent_id}/{action}", body)
        assert status == 200, answer

    async def set_state(self, agent_id: str, state: str) -> None:
        """Bring an idle agent to ``logged_out``, ``available`` (or ``unreachable`` when its
        headset is not registered) or ``paused``."""
        current = (await self.agent(agent_id))["state"]
        if current == state:
            return
        if state == "logged_out":
            await self.action(agent_id, "logout")
            return
        if current == "logged_out":
            await self.action(agent_id, "login")
            current = (await self.agent(agent_id))["state"]
        if state == "paused" and current != "paused":
            await self.action(agent_id, "pause", "break")
        elif state == "available" and current == "paused":
            await self.action(agent_id, "unpause")

    async def wait_state(self, agent_id: str, *states: str, timeout: float = 10.0
                         ) -> dict[str, Any]:
        """Wait until the agent is in one of ``states``; return it."""

        async def check() -> dict[str, Any] | None:
            agent = await self.agent(agent_id)
            return agent if agent["state"] in states else None

        result: dict[str, Any] = await eventually(check, timeout,
                                                  f"agent {agent_id} in {states}")
        return result

    # -- database -----------------------------------------------------------------------------

    async def _rows(self, query: Any) -> list[Any]:
        async with session_factory(self.db)() as session:
            return list((await session.execute(query)).scalars())

    async def call_events(self, kind: str, queue: str | None = None) -> list[Row]:
        """``call_events`` rows of ``kind`` (of one queue), in the order they were written."""
        rows: list[CallEventRow] = await self._rows(
            sa.select(CallEventRow).where(col(CallEventRow.kind) == kind)
            .order_by(col(CallEventRow.id)))
        out = [Row(r.call_id, r.at, r.kind, r.data) for r in rows]
        return [r for r in out if queue is None or r.data.get("queue") == queue]

    async def timeline(self, call_id: str) -> list[Row]:
        """Every event of one call, in order."""
        return [Row(r.call_id, r.at, r.kind, r.data) for r in await call_timeline(self.db, call_id)]

    async def agent_states(self, agent_id: str) -> list[Row]:
        """The agent's state changes, in order."""
        rows: list[AgentEventRow] = await self._rows(
            sa.select(AgentEventRow)
            .where(col(AgentEventRow.agent_id) == agent_id, col(AgentEventRow.kind) == "state")
            .order_by(col(AgentEventRow.id)))
        return [Row(r.agent_id, r.at, r.kind, r.data) for r in rows]

    async def call_rows(self, **where: Any) -> list[CallRow]:
        """The ``calls`` rows whose columns have the values ``where`` gives, oldest first."""
        rows: list[CallRow] = await self._rows(
            sa.select(CallRow).filter_by(**where).order_by(col(CallRow.started_at)))
        return rows

    async def state_change(self, agent_id: str, to: str, call_id: str, *,
                           timeout: float = 10.0) -> Row:
        """Wait for the agent's change to state ``to`` concerning ``call_id``; return it (so
        a test reads its own call's change, never one left by an earlier test)."""

        async def check() -> Row | None:
            return next((s for s in await self.agent_states(agent_id)
                         if s.data["to"] == to and s.data.get("call_id") == call_id), None)

        result: Row = await eventually(check, timeout, f"agent {agent_id} {to} for {call_id}")
        return result

    async def new_call(self, extension: str, known: list[dict[str, Any]]) -> str:
        """Wait for a call to ``extension`` not among ``known`` (rows of :meth:`calls`);
        return its call id."""
        seen = {row["call_id"] for row in known}

        async def check() -> str | None:
            return next((row["call_id"] for row in await self.calls(extension)
                         if row["call_id"] not in seen), None)

        result: str = await eventually(check, 10, f"a new call to {extension}")
        return result

    async def calls(self, extension: str) -> list[dict[str, Any]]:
        """Call rows for one dialed extension, oldest first."""
        return [{"call_id": r.call_id, "outcome": r.outcome, "tags": r.tags, "queue": r.queue,
                 "agent_id": r.agent_id, "ended": r.ended_at is not None}
                for r in await self.call_rows(extension=extension)]

    async def ended_calls(self, extension: str, count: int, timeout: float = 15.0
                          ) -> list[dict[str, Any]]:
        """Wait until ``count`` calls to ``extension`` have ended; return them (oldest first)."""

        async def check() -> list[dict[str, Any]] | None:
            rows = await self.calls(extension)
            done = [r for r in rows if r["ended"]]
            return rows if len(done) >= count and len(rows) == len(done) else None

        result: list[dict[str, Any]] = await eventually(
            check, timeout, f"{count} ended calls to {extension}")
        return result

    # -- PBX ----------------------------------------------------------------------------------

    async def bridges(self) -> list[dict[str, Any]]:
        """Every bridge Asterisk has (ARI ``GET /bridges``)."""
        auth = {"Authorization": aiohttp.encode_basic_auth(self.pbx.ari_user,
                                                            self.pbx.ari_password)}
        async with self._session.get(f"{self.pbx.ari_url}/ari/bridges", headers=auth) as resp:
            assert resp.status == 200
            result: list[dict[str, Any]] = await resp.json()
            return result

    def uri(self, extension: str) -> str:
        """SIP URI of an extension on the test Asterisk."""
        return f"sip:{extension}@{self.pbx.sip_host}:{self.pbx.sip_port}"

    # -- SIP peers ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def headset(self, agent_id: str, *, auto_answer: bool = True,
                      wait_reachable: bool = True) -> AsyncIterator[SipPeer]:
        """A registered agent headset: answers (when ``auto_answer``) with the agent tone and
        records each call into ``work/<agent>-<call>.wav``; waits until the daemon sees it."""
        account = self.pbx.agents[agent_id]
        async with SipPeer(name=f"headset-{agent_id}") as peer:
            await peer.register(account.username, account.password, self.pbx.sip_host,
                                self.pbx.sip_port)
            await peer.set_auto_answer(auto_answer, play_wav=self.agent_wav,
                                       record_wav=self.work / f"{agent_id}-{{call_id}}.wav")
            if wait_reachable:
                await eventually(lambda: self._reachable(agent_id), 10,
                                 f"headset {agent_id} reachable")
            yield peer

    async def _reachable(self, agent_id: str) -> bool:
        return bool((await self.agent(agent_id))["reachable"])

    @contextlib.asynccontextmanager
    async def caller(self, *, register: bool = False) -> AsyncIterator[SipPeer]:
        """A caller peer using the testbed's caller source (registered when it must take a
        callback; then it answers calls with the caller tone)."""
        self._peers += 1
        account = self.pbx.caller
        async with SipPeer(name=f"caller-{self._peers}") as peer:
            if register:
                await peer.register(account.username, account.password, self.pbx.sip_host,
                                    self.pbx.sip_port)
                await peer.set_auto_answer(
                    True, play_wav=self.caller_wav,
                    record_wav=self.work / f"callback-{self._peers}-{{call_id}}.wav")
            else:
                await peer.use_account(account.username, account.password, self.pbx.sip_host,
                                       self.pbx.sip_port)
            yield peer

    async def call(self, peer: SipPeer, queue_key: str, *, record: Path | None = None) -> str:
        """Dial the extension of a scenario and wait until the daemon answers."""
        extension = {**EXTENSIONS, **MORE_EXTENSIONS}[queue_key]
        call = await peer.call(self.uri(extension), play_wav=self.caller_wav,
                               record_wav=record)
        await peer.wait_for("confirmed", 10, call_id=call)
        return call


def max_concurrent_calls(events: list[PeerEvent]) -> int:
    """The most incoming calls a headset had at once (from its ``incoming`` and ``ended``
    events: ``disconnected`` waits for the recording on disk and can come after the next
    call's ``incoming``)."""
    open_calls: set[str] = set()
    most = 0
    for event in events:
        if event.kind == "incoming":
            open_calls.add(event["call_id"])
            most = max(most, len(open_calls))
        elif event.kind == "ended":
            open_calls.discard(event["call_id"])
    return most


def _derived_config(bed: PbxTestbed, work: Path, db_url: str) -> Path:
    source = json.loads(bed.config_file.read_text())
    settings = {**AGENTS, **MORE_AGENTS}
    agents = [{**agent, **settings[agent["id"]]} for agent in source["agents"]]
    update = {
        "agents": agents,
        "queues": {**QUEUES, **MORE_QUEUES},
        "acd": {"callback_retry_delay": 2, "callback_ring_timeout": 10,
                "callback_endpoint": "PJSIP/{number}", "random_seed": RANDOM_SEED},
        "security": {"outbound_allow": OUTBOUND_ALLOW},
        "flows": {"dir": str(FLOWS), "watch": False,
                  "routes": {**{ext: "acd" for ext in EXTENSIONS.values()},
                             **{ext: "acd_more" for ext in MORE_EXTENSIONS.values()}}},
        "database": {"url": db_url, "journal_dir": str(work / "acd-journal")},
    }
    return write_config(bed.config_file, work / "acd.yaml", update)


async def _create_token(config_file: Path, *args: str) -> str:
    """``callcontrol tokens create ARGS`` (before the daemon starts: it reads tokens then)."""
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcontrol", "--config", str(config_file), "tokens", "create",
        *args, stdout=asyncio.subprocess.PIPE)
    out, _ = await cli.communicate()
    assert cli.returncode == 0, f"tokens create {args} failed"
    return out.decode().strip()


@contextlib.asynccontextmanager
async def running_bed(work: Path, name: str, db_url: str) -> AsyncIterator[AcdBed]:
    """Start Asterisk and the daemon (its store at ``db_url``) for the ACD scenarios; stop both
    afterwards."""
    pbx = await start_testbed(work, name, agent_ids=(*AGENTS, *MORE_AGENTS))
    try:
        config_file = _derived_config(pbx, work, db_url)
        token = await _create_token(config_file, "--role", "admin", "--name", "acd-tests")
        agent_tokens = {
            agent_id: await _create_token(config_file, "--role", "agent", "--name", agent_id,
                                          "--agent", agent_id)
            for agent_id in AGENT_TOKENS}
        daemon = DaemonProcess(config_file, pbx.config.http.port, work / "daemon.log")
        await daemon.start(60)
        bed = AcdBed(pbx, daemon, token, db_url, work, agent_tokens)
        try:
            yield bed
        finally:
            await bed.close()
            await daemon.stop()
    finally:
        await pbx.stop()
