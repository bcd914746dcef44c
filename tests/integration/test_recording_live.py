"""Call recording on real Asterisk: pjsua2 callers and headsets, the daemon as a child process.

One bed for the module (tests/integration/flows_recording): queues recorded by policy
(``rq``: all, ``rn``: none, ``rd``: on demand, ``rk``: a queue step naming its policy), an
IVR flow recorded by the flow's policy with a sensitive gather, one where the caller leaves a
voicemail message while the call recording runs muted, and one sampled at 50 % (sipp
callers). Each test reads the recording row, the file under the recordings root (per channel:
caller 440 Hz left, agent 1 kHz right), the call's timeline, and for the secret: the database,
the journal, the daemon's log and the API. The agent's in-call headset codes (mute, on demand)
are sent as RFC 4733 digits from the headset during the bridged call. The daemon SIGKILL tests
run last: they restart the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
from acd_bed import _create_token
from sqlmodel import col

from callcontrol import audio
from callcontrol.recording.policy import sample_bucket
from callcontrol.sipua.client import SipPeer
from callcontrol.store.db import create_engine, session_factory
from callcontrol.store.queries import call_timeline
from callcontrol.store.tables import CallEventRow, CallRow, RecordingRow
from callcontrol_testing.daemon import DaemonApi, DaemonProcess, write_config
from callcontrol_testing.sipp import run_sipp
from callcontrol_testing.testbed import PbxTestbed, start_testbed
from callcontrol_testing.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.postgres,
              pytest.mark.asyncio(loop_scope="module")]

FLOWS = Path(__file__).parent / "flows_recording"
CALLER_HZ = 440
AGENT_HZ = 1000
QUEUE_OF = {"ra": "rq", "rn": "rn", "rd": "rd", "rk": "rk"}
EXTENSION = {"rq": "301", "rn": "302", "rd": "303", "rk": "304", "ivr": "305",
             "sampled": "306", "vm": "307"}
SECRET = "79318642"
"""The sensitive gather's digits: the first barges into its prompt."""
RECORDING = {
    "channels": "stereo",
    "policies": {"kept": {"record": "all", "retention_days": 30},
                 "asked": {"record": "on_demand", "retention_days": 30},
                 "half": {"record": {"percent": 50}, "retention_days": 30}},
    "queues": {"rq": "kept", "rn": "none", "rd": "asked"},
    "flows": {"rec_ivr": "kept", "rec_sampled": "half", "rec_vm": "kept"},
}
SAMPLED_CALLS = 40


class RecBed:
    """The running bed: testbed, daemon, admin API, database."""

    def __init__(self, pbx: PbxTestbed, daemon: DaemonProcess, config_file: Path, token: str,
                 db_url: str, work: Path) -> None:
        self.pbx, self.daemon, self.config_file, self.work = pbx, daemon, config_file, work
        self.db = create_engine(db_url)
        self.root = pbx.config.path(pbx.config.asterisk.recordings_dir)
        self.caller_wav = audio.make_tone_wav(work / "caller.wav", CALLER_HZ, 2.0)
        self.agent_wav = audio.make_tone_wav(work / "agent.wav", AGENT_HZ, 2.0)
        self.session = aiohttp.ClientSession()
        self.api = DaemonApi(self.session, daemon.url, token, timeout=5)

    async def close(self) -> None:
        await self.session.close()
        await self.db.dispose()

    async def rows(self, query: Any) -> list[Any]:
        async with session_factory(self.db)() as session:
            return list((await session.execute(query)).scalars())

    async def recordings(self, call_id: str) -> list[RecordingRow]:
        return await self.rows(sa.select(RecordingRow).where(
            col(RecordingRow.call_id) == call_id).order_by(col(RecordingRow.n)))

    async def recording(self, call_id: str, *statuses: str, timeout: float = 15.0
                        ) -> RecordingRow:
        """The call's first recording once its status is one of ``statuses``."""

        async def check() -> RecordingRow | None:
            rows = await self.recordings(call_id)
            return rows[0] if rows and rows[0].status in statuses else None

        row: RecordingRow = await eventually(check, timeout, f"recording of {call_id} "
                                             f"in {statuses}")
        return row

    async def events(self, call_id: str, kind: str) -> list[CallEventRow]:
        return [e for e in await call_timeline(self.db, call_id) if e.kind == kind]

    async def event(self, call_id: str, kind: str, timeout: float = 15.0) -> CallEventRow:
        async def check() -> CallEventRow | None:
            found = await self.events(call_id, kind)
            return found[0] if found else None

        row: CallEventRow = await eventually(check, timeout, f"{kind} of {call_id}")
        return row

    async def new_call(self, extension: str, known: set[str]) -> str:
        async def check() -> str | None:
            rows: list[CallRow] = await self.rows(
                sa.select(CallRow).where(col(CallRow.extension) == extension))
            return next((r.call_id for r in rows if r.call_id not in known), None)

        call_id: str = await eventually(check, 10, f"a call to {extension}")
        return call_id

    async def call_ids(self, extension: str) -> set[str]:
        rows: list[CallRow] = await self.rows(
            sa.select(CallRow).where(col(CallRow.extension) == extension))
        return {r.call_id for r in rows}

    async def ended(self, call_id: str) -> CallRow:
        async def check() -> CallRow | None:
            rows: list[CallRow] = await self.rows(
                sa.select(CallRow).where(col(CallRow.call_id) == call_id))
            return rows[0] if rows and rows[0].ended_at is not None else None

        row: CallRow = await eventually(check, 15, f"call {call_id} ended")
        return row

    def uri(self, extension: str) -> str:
        return f"sip:{extension}@{self.pbx.sip_host}:{self.pbx.sip_port}"

    @contextlib.asynccontextmanager
    async def headset(self, agent_id: str) -> AsyncIterator[SipPeer]:
        """A registered, answering headset of an available agent."""
        account = self.pbx.agents[agent_id]
        async with SipPeer(name=f"headset-{agent_id}") as peer:
            await peer.register(account.username, account.password, self.pbx.sip_host,
                                self.pbx.sip_port)
            await peer.set_auto_answer(True, play_wav=self.agent_wav)

            async def ready() -> bool:
                status, agents = await self.api("GET", "/api/agents")
                assert status == 200, agents
                agent = next(a for a in agents if a["id"] == agent_id)
                if agent["state"] == "logged_out":
                    await self.api("POST", f"/api/agents/{agent_id}/login")
                return bool(agent["reachable"]) and agent["state"] == "available"

            await eventually(ready, 15, f"agent {agent_id} available")
            yield peer

    @contextlib.asynccontextmanager
    async def caller(self) -> AsyncIterator[SipPeer]:
        account = self.pbx.caller
        async with SipPeer(name="caller") as peer:
            await peer.use_account(account.username, account.password, self.pbx.sip_host,
                                   self.pbx.sip_port)
            yield peer

    async def agent_call(self, agent_id: str, caller: SipPeer, agent: SipPeer
                         ) -> tuple[str, str, str]:
        """Call the agent's queue; return (SIP call of the caller, of the agent, call id)."""
        sip_call, call_id = await self.answered_call(caller, EXTENSION[QUEUE_OF[agent_id]])
        incoming = await agent.wait_for("incoming", 10)
        await agent.wait_for("confirmed", 10, call_id=incoming["call_id"])
        return sip_call, incoming["call_id"], call_id

    async def answered_call(self, caller: SipPeer, extension: str) -> tuple[str, str]:
        """Call ``extension`` with the caller's tone; once Asterisk answered, return (SIP
        call of the caller, the daemon's call id)."""
        known = await self.call_ids(extension)
        sip_call = await caller.call(self.uri(extension), play_wav=self.caller_wav)
        await caller.wait_for("confirmed", 10, call_id=sip_call)
        return sip_call, await self.new_call(extension, known)

    def file(self, row: RecordingRow) -> Path:
        return self.root / row.path

    async def recordings_check(self) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcontrol", "--config", str(self.config_file),
            "recordings", "check", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()


def _config(pbx: PbxTestbed, work: Path, db_url: str) -> Path:
    source = json.loads(pbx.config_file.read_text())
    agents = [{**a, "queues": [QUEUE_OF[a["id"]]]} for a in source["agents"]]
    update = {
        "agents": agents,
        "queues": {q: {"ring_timeout": 5, "wrap_up": 0.5} for q in QUEUE_OF.values()},
        "recording": RECORDING,
        "flows": {"dir": str(FLOWS), "watch": False,
                  "routes": {**{EXTENSION[q]: "rec_queue" for q in QUEUE_OF.values()},
                             EXTENSION["ivr"]: "rec_ivr", EXTENSION["sampled"]: "rec_sampled",
                             EXTENSION["vm"]: "rec_vm"}},
        "database": {"url": db_url, "journal_dir": str(work / "journal")},
    }
    return write_config(pbx.config_file, work / "rec.yaml", update)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bed(tmp_path_factory: pytest.TempPathFactory, module_db_url: str
              ) -> AsyncIterator[RecBed]:
    work = tmp_path_factory.mktemp("rec")
    pbx = await start_testbed(work, f"rec-{os.getpid()}", agent_ids=tuple(QUEUE_OF))
    try:
        config_file = _config(pbx, work, module_db_url)
        token = await _create_token(config_file, "--role", "admin", "--name", "rec-tests")
        daemon = DaemonProcess(config_file, pbx.config.http.port, work / "daemon.log")
        await daemon.start(60)
        running = RecBed(pbx, daemon, config_file, token, module_db_url, work)
        try:
            yield running
        finally:
            await running.close()
            await running.daemon.stop()
    finally:
        await pbx.stop()


def _channel(bed: RecBed, path: Path, index: int) -> Path:
    return audio.extract_channel(path, index, bed.work / f"{path.stem}-{index}.wav")


async def test_an_agent_call_is_recorded_in_stereo_caller_left_agent_right(bed: RecBed) -> None:
    async with bed.headset("ra") as agent, bed.caller() as caller:
        sip_call, _, call_id = await bed.agent_call("ra", caller, agent)
        row = await bed.recording(call_id, "recording")
        assert row.policy == "kept" and row.channels == 2 and row.n == 1
        assert not bed.file(row).exists()  # the row first; the file once whole
        await asyncio.sleep(3.0)  # three seconds of conversation: tones both ways
        await caller.hangup(sip_call)
        row = await bed.recording(call_id, "complete")
    path = bed.file(row)
    assert path.is_file()
    data = path.read_bytes()
    assert len(data) == row.size_bytes and hashlib.sha256(data).hexdigest() == row.sha256
    assert row.duration_s is not None and abs(audio.duration(path) - row.duration_s) < 0.01
    assert 2.5 < row.duration_s < 10.0
    left, right = _channel(bed, path, 0), _channel(bed, path, 1)
    assert audio.tone_seconds(left, CALLER_HZ, min_ratio=0.5) > 2.0, "no caller on the left"
    assert audio.tone_seconds(right, AGENT_HZ, min_ratio=0.5) > 2.0, "no agent on the right"
    assert audio.tone_seconds(left, AGENT_HZ, min_ratio=0.2) < 0.3, "agent leaks to the left"
    assert audio.tone_seconds(right, CALLER_HZ, min_ratio=0.2) < 0.3, "caller leaks right"
    decisions = [(e.data["policy"], e.data["record"])
                 for e in await bed.events(call_id, "recording_decision")]
    assert decisions == [("none", False), ("kept", True)]  # the IVR leg, then the queue's


async def test_policy_none_writes_no_file(bed: RecBed) -> None:
    async with bed.headset("rn") as agent, bed.caller() as caller:
        sip_call, _, call_id = await bed.agent_call("rn", caller, agent)
        await bed.event(call_id, "agent_connected")
        await caller.hangup(sip_call)
        await bed.ended(call_id)
    decisions = [e.data for e in await bed.events(call_id, "recording_decision")]
    assert decisions[-1]["policy"] == "none" and decisions[-1]["record"] is False
    assert await bed.recordings(call_id) == []
    assert not [p for p in bed.root.rglob("*") if call_id in p.name]


async def test_on_demand_starts_when_asked_through_the_api(bed: RecBed) -> None:
    async with bed.headset("rd") as agent, bed.caller() as caller:
        sip_call, _, call_id = await bed.agent_call("rd", caller, agent)
        await bed.event(call_id, "agent_connected")
        assert await bed.recordings(call_id) == []  # nothing before it is asked
        status, answer = await bed.api("POST", f"/api/calls/{call_id}/recording",
                                       {"action": "start"})
        assert status == 200, answer
        row = await bed.recording(call_id, "recording")
        assert row.policy == "asked"
        started = await bed.event(call_id, "recording_started")
        assert started.data["by"] == "api:rec-tests"
        status, answer = await bed.api("POST", f"/api/calls/{call_id}/recording",
                                       {"action": "start"})
        assert status == 409 and answer["error"]["id"] == "recording_unchanged"
        await asyncio.sleep(1.5)
        await caller.hangup(sip_call)
        row = await bed.recording(call_id, "complete")
    assert bed.file(row).stat().st_size == row.size_bytes
    status, answer = await bed.api("POST", f"/api/calls/{call_id}/recording",
                                   {"action": "stop"})
    assert status == 404 and answer["error"]["id"] == "call_not_live"


async def test_the_agent_mutes_and_unmutes_the_recording_from_the_headset(bed: RecBed) -> None:
    async with bed.headset("ra") as agent, bed.caller() as caller:
        sip_call, agent_call, call_id = await bed.agent_call("ra", caller, agent)
        row = await bed.recording(call_id, "recording")
        await asyncio.sleep(1.5)  # both tones recorded before the mute
        await agent.send_dtmf(agent_call, "*47")
        muted = await bed.event(call_id, "recording_muted", timeout=10)
        await asyncio.sleep(2.5)  # the muted span
        await agent.send_dtmf(agent_call, "*47")  # the same code unmutes
        unmuted = await bed.event(call_id, "recording_unmuted", timeout=10)
        await asyncio.sleep(1.5)  # both tones again
        await caller.hangup(sip_call)
        row = await bed.recording(call_id, "complete")
    assert muted.data["by"] == unmuted.data["by"] == "agent:ra"
    assert muted.data["recording_id"] == unmuted.data["recording_id"] == row.id
    assert muted.data["silent"] is True and unmuted.data["silent"] is False
    start = (muted.at - row.started_at).total_seconds()
    span = (unmuted.at - muted.at).total_seconds()
    assert span > 2.0
    left, right = _channel(bed, bed.file(row), 0), _channel(bed, bed.file(row), 1)
    for channel in (left, right):  # silence on both channels: no window above the floor
        assert audio.tone_windows(channel, CALLER_HZ, start + 0.3, start + span - 0.3) == []
    for channel, hz in ((left, CALLER_HZ), (right, AGENT_HZ)):
        assert audio.tone_seconds_between(channel, hz, 0.0, start - 0.2, min_ratio=0.5) > 0.8
        assert audio.tone_seconds_between(channel, hz, start + span + 0.3, 1e9,
                                          min_ratio=0.5) > 0.8


async def test_the_agent_starts_and_stops_an_on_demand_recording_from_the_headset(
    bed: RecBed,
) -> None:
    async with bed.headset("rd") as agent, bed.caller() as caller:
        sip_call, agent_call, call_id = await bed.agent_call("rd", caller, agent)
        await bed.event(call_id, "agent_connected")
        await agent.send_dtmf(agent_call, "*49")
        first = await bed.recording(call_id, "recording", timeout=10)
        await asyncio.sleep(1.5)
        await agent.send_dtmf(agent_call, "*49")  # the same code stops it
        first = await bed.recording(call_id, "complete")
        await agent.send_dtmf(agent_call, "*49")  # and starts the call's next one

        async def second() -> RecordingRow | None:
            rows = await bed.recordings(call_id)
            return rows[1] if len(rows) == 2 else None

        row = await eventually(second, 10, "the second recording")
        await asyncio.sleep(1.0)
        await caller.hangup(sip_call)
        await bed.ended(call_id)
    rows = await bed.recordings(call_id)
    assert [(r.n, r.policy) for r in rows] == [(1, "asked"), (2, "asked")]
    assert rows[1].path.endswith(f"{call_id}-2.wav") and row.id == rows[1].id
    started = [e.data["by"] for e in await bed.events(call_id, "recording_started")]
    stopped = [e.data["by"] for e in await bed.events(call_id, "recording_stopped")]
    assert started == ["agent:rd", "agent:rd"] and stopped[0] == "agent:rd"
    assert audio.tone_seconds(_channel(bed, bed.file(first), 1), AGENT_HZ, min_ratio=0.5) > 0.8


async def test_a_sensitive_gather_is_silent_in_the_file_and_its_digits_appear_nowhere(
    bed: RecBed,
) -> None:
    async with bed.caller() as caller:
        sip_call, call_id = await bed.answered_call(caller, EXTENSION["ivr"])

        async def gather_prompt() -> bool:
            return any(e.data.get("playback_id", "").count("-pin-")
                       for e in await bed.events(call_id, "playback_started"))

        await eventually(gather_prompt, 15, "the gather's prompt playing")
        await caller.send_dtmf(sip_call, SECRET[0])  # barges into the prompt
        await bed.event(call_id, "barge_in")
        await caller.send_dtmf(sip_call, SECRET[1:])
        await caller.wait_for("disconnected", 30, call_id=sip_call)  # the flow hangs up
    row = await bed.recording(call_id, "complete")
    muted = await bed.event(call_id, "recording_muted")
    unmuted = await bed.event(call_id, "recording_unmuted")
    assert muted.data["by"] == unmuted.data["by"] == "flow"
    assert muted.data["recording_id"] == row.id
    (barge,) = [e.data for e in await bed.events(call_id, "barge_in")]
    assert barge["digit"] == "*"
    (digits,) = [e.data for e in await bed.events(call_id, "digits")]
    assert digits["digits"] == "*" * len(SECRET)

    # the muted span is silent on both channels, with the length the timeline says
    path = bed.file(row)
    start = (muted.at - row.started_at).total_seconds()
    span = (unmuted.at - muted.at).total_seconds()
    assert span > 1.0
    for index in (0, 1):
        channel = _channel(bed, path, index)
        assert audio.tone_windows(channel, CALLER_HZ, start + 0.3, start + span - 0.3) == []
    left = _channel(bed, path, 0)
    assert audio.tone_seconds_between(left, CALLER_HZ, 0.0, start - 0.2) > 0.5
    assert audio.tone_seconds_between(left, CALLER_HZ, start + span + 0.3, 1e9) > 0.5
    heard = [s for s, _, _ in audio.tone_windows(left, CALLER_HZ, 0.0)]
    gap = max(b - a for a, b in itertools.pairwise(heard))
    assert abs(gap - span) < 0.6, f"silent gap {gap:.2f} s, muted {span:.2f} s"

    # the digits: nowhere in the database, the journal, the log, the API
    status, api_call = await bed.api("GET", f"/api/calls/{call_id}")
    assert status == 200
    dumps = {
        "api": json.dumps(api_call),
        "timeline": json.dumps([e.data for e in await call_timeline(bed.db, call_id)]),
        "calls": json.dumps([r.model_dump(mode="json") for r in
                             await bed.rows(sa.select(CallRow))]),
        "journal": b"".join(p.read_bytes() for p in (bed.work / "journal").rglob("*")
                            if p.is_file()).decode(errors="replace"),
        "log": bed.daemon.log_path.read_text(errors="replace"),
    }
    for where, text in dumps.items():
        assert SECRET not in text and SECRET[1:] not in text, f"the digits are in the {where}"
    for event in await call_timeline(bed.db, call_id):
        for key in ("digit", "digits"):
            value = str(event.data.get(key, ""))
            assert not any(c.isdigit() for c in value), (event.kind, event.data)


async def test_a_voicemail_beside_a_muted_call_recording_is_the_calls_next_recording(
    bed: RecBed,
) -> None:
    async with bed.caller() as caller:
        sip_call, call_id = await bed.answered_call(caller, EXTENSION["vm"])
        await bed.recording(call_id, "recording")  # the IVR leg, by the flow's policy
        status, answer = await bed.api("POST", f"/api/calls/{call_id}/recording",
                                       {"action": "mute"})
        assert status == 200, answer
        await eventually(lambda: _message_started(bed, call_id), 15, "the message recording")
        await asyncio.sleep(2.0)  # two seconds of the caller's tone
        await caller.send_dtmf(sip_call, "#")
        await caller.wait_for("disconnected", 15, call_id=sip_call)  # the flow hangs up

    async def both_sealed() -> list[RecordingRow] | None:
        rows = await bed.recordings(call_id)
        done = len(rows) == 2 and all(r.status != "recording" for r in rows)
        return rows if done else None

    leg, message = await eventually(both_sealed, 15, f"two recordings of {call_id} sealed")
    assert (leg.n, leg.policy, leg.channels, leg.status) == (1, "kept", 2, "complete")
    assert (message.n, message.policy, message.channels, message.status) == (
        2, "voicemail", 1, "complete")
    (saved,) = [e.data for e in await bed.events(call_id, "saved")]
    assert saved["value"] == message.id
    for row in (leg, message):
        data = bed.file(row).read_bytes()
        assert len(data) == row.size_bytes and hashlib.sha256(data).hexdigest() == row.sha256
    # the message holds the caller's tone: the call recording's mute is not the message's...
    path = bed.file(message)
    assert message.duration_s is not None and 1.5 <= message.duration_s < 8.0
    assert abs(audio.duration(path) - message.duration_s) < 0.01
    assert audio.tone_seconds(path, CALLER_HZ, min_ratio=0.5) > 1.0
    # ...while the call recording stayed silent from its mute on
    muted = await bed.event(call_id, "recording_muted")
    after = (muted.at - leg.started_at).total_seconds() + 0.3
    left = _channel(bed, bed.file(leg), 0)
    assert audio.tone_seconds_between(left, CALLER_HZ, after, 1e9) < 0.3


async def _message_started(bed: RecBed, call_id: str) -> bool:
    return any(e.data.get("step") == "message"
               for e in await bed.events(call_id, "recording_started"))


async def test_percent_50_over_40_calls_records_between_10_and_30(bed: RecBed) -> None:
    extension = EXTENSION["sampled"]
    caller = bed.pbx.caller
    # 40 short calls (audio, a digit, BYE after about 2.5 s), up to 10 at once
    result = await run_sipp(bed.pbx.sip_host, bed.pbx.sip_port, user=caller.username,
                            password=caller.password, workdir=bed.work / "sipp-sampled",
                            service=extension, calls=SAMPLED_CALLS, rate=8.0, max_concurrent=10,
                            call_ms=1000, seconds=60)
    assert result.ok, f"{result.meaning}: {result.errors}"
    assert result.stats.successful == SAMPLED_CALLS

    async def settled() -> tuple[set[str], list[RecordingRow]] | None:
        calls: list[CallRow] = await bed.rows(
            sa.select(CallRow).where(col(CallRow.extension) == extension))
        if len(calls) < SAMPLED_CALLS or any(c.ended_at is None for c in calls):
            return None
        ids = {c.call_id for c in calls}
        rows: list[RecordingRow] = await bed.rows(
            sa.select(RecordingRow).where(col(RecordingRow.call_id).in_(ids)))
        return None if any(r.status == "recording" for r in rows) else (ids, rows)

    ids, rows = await eventually(settled, 30, "every sampled call ended and its file sealed")
    assert len(ids) == SAMPLED_CALLS
    recorded: set[str] = set()
    for call_id in ids:  # decided once per call, on its timeline, as its id's bucket says
        (decision,) = [e.data for e in await bed.events(call_id, "recording_decision")]
        assert decision["policy"] == "half"
        assert decision["reason"].startswith("sampled: bucket"), decision
        assert decision["record"] is (sample_bucket(call_id) < 50), (call_id, decision)
        if decision["record"]:
            recorded.add(call_id)
    assert 10 <= len(recorded) <= 30, f"{len(recorded)} of {SAMPLED_CALLS} recorded"

    assert sorted(r.call_id for r in rows) == sorted(recorded)  # one recording each
    for row in rows:
        assert (row.policy, row.status, row.n) == ("half", "complete", 1)
        data = bed.file(row).read_bytes()
        assert len(data) == row.size_bytes and hashlib.sha256(data).hexdigest() == row.sha256
        assert row.duration_s is not None and row.duration_s > 1.0
    files = [p.name for p in bed.root.rglob("*") if p.is_file()]
    for call_id in ids - recorded:
        assert not [name for name in files if call_id in name], f"{call_id} has a file"


async def test_a_daemon_sigkill_during_a_recorded_call_leaves_no_row_recording(
    bed: RecBed,
) -> None:
    async with bed.headset("rk") as agent, bed.caller() as caller:
        sip_call, _, call_id = await bed.agent_call("rk", caller, agent)
        row = await bed.recording(call_id, "recording")
        assert row.policy == "kept"  # the queue step's own policy (the queue names none)
        await asyncio.sleep(1.5)
        bed.daemon.kill()
        await bed.daemon.wait_exit()
        bed.daemon = DaemonProcess(bed.config_file, bed.pbx.config.http.port,
                                   bed.work / "daemon-2.log")
        await bed.daemon.start(60)
        row = await bed.recording(call_id, "complete", "partial")
        await caller.hangup(sip_call)
        await caller.wait_for("disconnected", 10, call_id=sip_call)
    path = bed.file(row)
    assert path.is_file() and path.stat().st_size == row.size_bytes
    assert row.duration_s is not None and row.duration_s > 1.0
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "hidden file left"
    code, out = await bed.recordings_check()
    assert code == 0, out


async def test_an_adopted_call_records_on_demand_under_its_next_number(bed: RecBed) -> None:
    async with bed.headset("rd") as agent, bed.caller() as caller:
        sip_call, agent_call, call_id = await bed.agent_call("rd", caller, agent)
        await bed.event(call_id, "agent_connected")
        status, answer = await bed.api("POST", f"/api/calls/{call_id}/recording",
                                       {"action": "start"})
        assert status == 200, answer
        await bed.recording(call_id, "recording")
        await asyncio.sleep(1.0)
        bed.daemon.kill()  # recording n=1: Asterisk goes on writing it
        await bed.daemon.wait_exit()
        bed.daemon = DaemonProcess(bed.config_file, bed.pbx.config.http.port,
                                   bed.work / "daemon-3.log")
        await bed.daemon.start(60)
        await bed.event(call_id, "recovered")
        await agent.send_dtmf(agent_call, "*49")  # the adopted call's agent leg is heard

        async def second() -> RecordingRow | None:
            rows = await bed.recordings(call_id)
            return rows[1] if len(rows) == 2 else None

        await eventually(second, 15, "the adopted call's recording")
        await asyncio.sleep(1.0)
        await caller.hangup(sip_call)
        await bed.ended(call_id)

    async def finished() -> list[RecordingRow] | None:
        rows = await bed.recordings(call_id)
        return rows if all(r.status in ("complete", "partial") for r in rows) else None

    rows = await eventually(finished, 15, "both recordings finished")
    assert [r.n for r in rows] == [1, 2]
    assert rows[1].path.endswith(f"{call_id}-2.wav") and rows[1].status == "complete"
    assert all(bed.file(r).is_file() for r in rows)
    assert audio.tone_seconds(_channel(bed, bed.file(rows[1]), 0), CALLER_HZ,
                              min_ratio=0.5) > 0.5, "no caller in the adopted call's recording"
    started = await bed.events(call_id, "recording_started")
    assert [(e.data["n"], e.data["by"]) for e in started] == [(1, "api:rec-tests"),
                                                              (2, "agent:rd")]
