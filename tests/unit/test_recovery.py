"""The decision table of callcontrol.recovery after a daemon restart, on a real store (SQLite)
and the fake telephony: what a previous daemon left open, and what the new one does with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.adopt import Adoption, plan_adoption
from callcontrol.acd.router import Acd
from callcontrol.calls.context import TimelineEntry
from callcontrol.calls.manager import CallManager
from callcontrol.calls.router import EventRouter
from callcontrol.calls.session import CallSession
from callcontrol.clock import utcnow
from callcontrol.config import AgentConfig, QueueConfig, RecordingSettings, SecretRef
from callcontrol.fake_telephony import FakeTelephony
from callcontrol.recording.paths import RecordingPaths
from callcontrol.recording.runtime import CallRecorder, RecordingService
from callcontrol.recovery import Recovery
from callcontrol.store.queries import call_timeline, get_call
from callcontrol.store.records import CallEvent, CallOpened, Outcome
from callcontrol.store.writer import StoreWriter
from callcontrol.telephony import ChannelInfo
from callcontrol_testing.waiting import wait_until


class AcdPart:
    """The two calls recovery makes of the ACD service, on a bare :class:`Acd`."""

    def __init__(self, acd: Acd) -> None:
        self.acd = acd

    def adoption(self, *, call_id: str, caller_channel: str, caller_number: str,
                 timeline: Sequence[TimelineEntry], channels: Mapping[str, ChannelInfo],
                 ) -> Adoption | None:
        return plan_adoption(self.acd, call_id=call_id, caller_channel=caller_channel,
                             caller_number=caller_number, timeline=timeline, channels=channels)

    def release_unadopted(self, live: Collection[str]) -> list[str]:
        return self.acd.release_unadopted(live)


async def no_flow(_session: CallSession) -> Outcome:
    raise AssertionError("adopted calls do not run the flow")


def opened(call_id: str) -> CallOpened:
    return CallOpened(call_id=call_id, channel_id=f"ch-{call_id}", caller_number="+3906",
                      extension="100")


def event(call_id: str, kind: str, **data: Any) -> CallEvent:
    return CallEvent(call_id=call_id, kind=kind, data=data)


@pytest.fixture
async def store(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[StoreWriter]:
    """The store writer over the test's SQLite store (``engine``), its journal in tmp_path."""
    store = StoreWriter(engine, tmp_path / "journal")
    store.start()
    yield store
    await store.close()


async def test_restart_adopts_queue_calls_and_closes_the_others(
    engine: AsyncEngine, store: StoreWriter,
) -> None:
    await _scenario(engine, store)


async def _scenario(engine: Any, store: StoreWriter) -> None:
    entered_at = utcnow().isoformat()
    previous = [  # what the dead daemon journaled
        opened("ivr"), event("ivr", "playback_started", playback_id="pb-ch-ivr-1"),
        opened("dial"), event("dial", "dial_answered", to="number:+39"),
        opened("wait"), event("wait", "queue_entered", queue="q", entry_id="e1", priority=0,
                              entered_at=entered_at),
        opened("talk"), event("talk", "queue_entered", queue="q", entry_id="e2", priority=0,
                              entered_at=entered_at),
        event("talk", "queue_left", queue="q", entry_id="e2", reason="answered"),
        event("talk", "agent_connected", queue="q", agent_id="a1", wait_s=1.0),
        opened("gone"),
    ]
    for record in previous:
        store.append(record)
    await store.flush()

    tel = FakeTelephony()
    tel.started = utcnow() - timedelta(hours=1)  # Asterisk was up before every call
    tel.channels = {c.channel_id: c for c in (
        ChannelInfo("ch-ivr", "Up", "+3906", "100"),
        ChannelInfo("ch-dial", "Up", "+3906", "100", bridge_ids=("dial-dial-1",)),
        ChannelInfo("ch-wait", "Up", "+3906", "100"),
        ChannelInfo("ch-talk", "Up", "+3906", "100", bridge_ids=("talk-queue",)),
        ChannelInfo("talk-agent-1", "Up", "", "", bridge_ids=("talk-queue",)),
        ChannelInfo("stray", "Up", "", ""),
    )}
    router = EventRouter()
    agents = [AgentConfig(id=a, name=a, endpoint=f"ep-{a}", password=SecretRef(env="X"),
                          queues=["q"]) for a in ("a1", "a2")]
    calls = CallManager(tel, store, router, no_flow)
    acd = Acd(agents, {"q": QueueConfig(wrap_up=0)}, log=store, post=router.post,
              services=calls.start_service)
    acd.board.restore("a1", "on_call", call_id="talk", queue="q")
    acd.board.restore("a2", "on_call", call_id="ended-long-ago", queue="q")
    imports: list[object] = []

    class Ledger:
        async def resync(self, pbx_started: object) -> None:
            imports.append(pbx_started)

    recovery = Recovery(telephony=tel, calls=calls, router=router, engine=engine, log=store,
                        acd=AcdPart(acd), ledger=Ledger())

    await recovery.resync()
    await store.flush()
    assert len(imports) == 1  # the fallback ledger is imported at every resync

    async def outcome(call_id: str) -> str | None:
        row = await get_call(engine, call_id)
        assert row is not None
        return row.outcome

    # IVR step: playback stopped, handed to the fallback, closed interrupted
    assert ("stop_playback", {"playback_id": "pb-ch-ivr-1"}) in tel.commands
    assert [a["channel_id"] for n, a in tel.commands if n == "continue_in_dialplan"] == ["ch-ivr"]
    assert await outcome("ivr") == "interrupted"
    # a bridge nobody can adopt (dial step), the channel gone: closed with a reason
    assert await outcome("dial") == "interrupted"
    assert await outcome("gone") == "interrupted"
    hung_up = {a["channel_id"] for n, a in tel.commands if n == "hangup"}
    assert hung_up == {"ch-dial", "stray"}
    # queue calls: adopted, open, owned by a new task each, logged recovered
    assert set(calls.sessions) == {"wait", "talk"}
    assert await outcome("wait") is None and await outcome("talk") is None
    assert router.owns("ch-wait") and router.owns("ch-talk") and router.owns("talk-agent-1")
    recovered = {c: [e.data for e in await call_timeline(engine, c) if e.kind == "recovered"]
                 for c in ("wait", "talk", "ivr")}
    assert recovered["wait"] == [{"adopted": "waiting", "queue": "q", "entry_id": "e1"}]
    assert recovered["talk"][0]["adopted"] == "bridged"
    assert recovered["talk"][0]["agent_channel"] == "talk-agent-1"
    assert recovered["ivr"][0]["outcome"] == "interrupted"
    assert acd.board.agents["a1"].state.value == "on_call"
    assert acd.board.agents["a2"].state.value == "available"  # its call was not adopted

    # a second resync (an ARI reconnect) leaves the adopted calls alone
    await recovery.resync()
    assert set(calls.sessions) == {"wait", "talk"}

    # the ARI link cut while the talking caller hung up (no event heard), Asterisk still the
    # same: the call ends as if its hangup had been heard, not "lost"
    del tel.channels["ch-talk"]
    await recovery.resync()
    await wait_until(lambda: "talk" not in calls.sessions, 5)
    # Asterisk restarted while the link was down: the waiting caller was cut, "lost"
    await store.flush()
    del tel.channels["ch-wait"]
    tel.started = utcnow()
    await recovery.resync()
    await asyncio.wait_for(asyncio.gather(*calls._tasks.values()), 5)
    await store.flush()
    assert await outcome("wait") == "lost"
    assert await outcome("talk") == "completed"
    assert "hangup_unseen" in [e.kind for e in await call_timeline(engine, "talk")]
    assert acd.board.agents["a1"].state.value == "available"
    for call_id in ("wait", "talk"):
        kinds = [e.kind for e in await call_timeline(engine, call_id)]
        assert kinds.count("recovered") == 1 and kinds.count("call_ended") == 1, kinds


async def test_an_adopted_call_records_on_demand_under_the_next_number(
    tmp_path: Path, engine: AsyncEngine, store: StoreWriter,
) -> None:
    for record in (  # a talk whose first recording the agent stopped before the crash
        opened("talk"),
        event("talk", "queue_entered", queue="q", entry_id="e1", priority=0,
              entered_at=utcnow().isoformat(), recording="asked"),
        event("talk", "recording_decision", policy="asked", record=False, on_demand=True,
              reason="on_demand"),
        event("talk", "queue_left", queue="q", entry_id="e1", reason="answered"),
        event("talk", "agent_connected", queue="q", agent_id="a1", wait_s=1.0),
        event("talk", "recording_started", recording_id="r1", n=1, policy="asked"),
        event("talk", "recording_stopped", recording_id="r1", by="agent:a1"),
    ):
        store.append(record)
    await store.flush()
    tel = FakeTelephony()
    tel.started = utcnow() - timedelta(hours=1)
    tel.channels = {c.channel_id: c for c in (
        ChannelInfo("ch-talk", "Up", "+3906", "100", bridge_ids=("talk-queue",)),
        ChannelInfo("talk-agent-1", "Up", "", "", bridge_ids=("talk-queue",)))}
    router = EventRouter()
    settings = RecordingSettings.model_validate(
        {"policies": {"asked": {"record": "on_demand"}}})
    service = RecordingService(settings, RecordingPaths(tmp_path / "rec"), tel, store,
                               tmp_path / "spool")
    calls = CallManager(tel, store, router, no_flow, recorder=service.for_call)
    agents = [AgentConfig(id="a1", name="a1", endpoint="ep-a1", password=SecretRef(env="X"),
                          queues=["q"])]
    acd = Acd(agents, {"q": QueueConfig(wrap_up=0)}, log=store, post=router.post,
              services=calls.start_service)
    acd.board.restore("a1", "on_call", call_id="talk", queue="q")

    class Ledger:
        async def resync(self, pbx_started: object) -> None:
            pass

    recovery = Recovery(telephony=tel, calls=calls, router=router, engine=engine,
                        log=store, acd=AcdPart(acd), ledger=Ledger())
    await recovery.resync()
    recordings = calls.sessions["talk"].recordings
    assert isinstance(recordings, CallRecorder)
    await wait_until(lambda: recordings.leg_policy == "asked", 5)  # the queue leg again
    assert await recordings.start("api:sup", on_demand=True, wait_consent=False)
    started = [a["file"] for n, a in tel.commands if n == "start_call_recording"]
    assert len(started) == 1 and started[0].endswith("/.talk-2.raw")
    # what Asterisk would write (0.2 s of stereo), so the file settles at once
    await asyncio.to_thread(Path(started[0]).write_bytes, bytes(3200))
    del tel.channels["ch-talk"]
    await recovery.resync()
    await asyncio.wait_for(asyncio.gather(*calls._tasks.values()), 5)
    await service.close()
    await store.flush()
    timeline = await call_timeline(engine, "talk")
    assert [e.data["n"] for e in timeline if e.kind == "recording_started"] == [1, 2]
    assert [e.kind for e in timeline].count("recording_decision") == 1
