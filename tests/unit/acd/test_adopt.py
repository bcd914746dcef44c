"""Queue callers a restarted daemon adopts (callcontrol.acd.adopt), over the fake switch.

Each test rebuilds what a previous daemon left: a timeline (as the store returns it), the
channels Asterisk still has, agents as :meth:`AgentBoard.restore` put them back; then adopts
the call into a real :class:`CallManager` task and drives it to its end.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.adopt import plan_adoption, queue_state, restore_agents
from callcontrol.acd.agents import AgentState
from callcontrol.acd.dispositions import Dispositions
from callcontrol.acd.router import Acd
from callcontrol.calls.session import CallSession
from callcontrol.clock import utcnow
from callcontrol.config import DispositionsConfig
from callcontrol.store.db import session_factory
from callcontrol.store.records import CallClosed
from callcontrol.store.tables import AgentEventRow, CallEventRow
from callcontrol.telephony import ChannelHungUp, ChannelInfo

from .conftest import Harness, agent, queue, wait_for

S = AgentState


@dataclass
class Entry:
    """A timeline entry as the store returns it."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)


def entered(entry_id: str, seconds_ago: float, **data: Any) -> Entry:
    at = utcnow() - timedelta(seconds=seconds_ago)
    return Entry("queue_entered", {"queue": "q", "entry_id": entry_id, "priority": 0,
                                   "entered_at": at.isoformat(), **data}, at)


def bridged(entry_id: str, agent_id: str, talked: float) -> list[Entry]:
    at = utcnow() - timedelta(seconds=talked)
    return [entered(entry_id, talked + 5),
            Entry("queue_left", {"queue": "q", "entry_id": entry_id, "reason": "answered"}, at),
            Entry("agent_connected", {"queue": "q", "agent_id": agent_id, "wait_s": 5.0}, at)]


def channel(channel_id: str, *bridges: str) -> ChannelInfo:
    return ChannelInfo(channel_id, "Up", "", "100", bridge_ids=bridges)


class Daemon:
    """The restarted daemon's parts: the ACD of the harness, a call manager, a router."""

    def __init__(self, h: Harness, acd: Acd) -> None:
        self.h, self.acd = h, acd
        self.router = h.router
        self.calls = h.calls

    def adopt(self, call_id: str, timeline: list[Entry], channels: list[ChannelInfo],
              number: str = "") -> CallSession:
        plan = plan_adoption(self.acd, call_id=call_id, caller_channel=f"{call_id}-caller",
                             caller_number=number, timeline=timeline,
                             channels={c.channel_id: c for c in channels})
        assert plan is not None
        return self.calls.adopt(call_id, f"{call_id}-caller", caller_number=number,
                                caller_name="", extension="100", runner=plan.runner,
                                playbacks=3, claims=plan.claims)

    async def closed(self, call_id: str) -> CallClosed:
        await asyncio.wait_for(self.calls._tasks[call_id], 5)
        closes = [r for r in self.h.log.records
                  if isinstance(r, CallClosed) and r.call_id == call_id]
        assert len(closes) == 1, closes
        return closes[0]


def commands(h: Harness, name: str, **match: Any) -> list[dict[str, Any]]:
    return [a for n, a in h.telephony.commands
            if n == name and all(a.get(k) == v for k, v in match.items())]


# -- reading the timeline ------------------------------------------------------------------

def test_queue_state_follows_the_last_stay() -> None:
    assert queue_state([Entry("call_arrived"), Entry("playback_started")]) is None
    waiting = queue_state([entered("e1", 3, skills={"de": 2}, max_wait=30, keys={"0": "x"})])
    assert waiting is not None and waiting.agent_id is None
    assert waiting.request.skills == {"de": 2} and waiting.request.max_wait == 30
    assert waiting.request.keys == {"0": "x"} and waiting.entry_id == "e1"
    talking = queue_state(bridged("e1", "a1", 10))
    assert talking is not None and talking.agent_id == "a1" and not talking.on_hold
    on_hold = queue_state([*bridged("e1", "a1", 10), Entry("hold", {"agent_id": "a1"})])
    assert on_hold is not None and on_hold.on_hold
    assert queue_state([*bridged("e1", "a1", 10), Entry("agent_disconnected")]) is None
    left = Entry("queue_left", {"queue": "q", "entry_id": "e1", "reason": "timed_out"})
    assert queue_state([entered("e1", 3), left]) is None
    transferred = queue_state([*bridged("e1", "a1", 10), Entry("agent_disconnected"),
                               entered("e2", 1)])
    assert transferred is not None and transferred.entry_id == "e2"


# -- bridged with an agent -----------------------------------------------------------------

async def test_bridged_call_is_kept_and_agent_hanging_up_ends_it_politely(
    harness: Harness,
) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue(wrap_up=0.3)}, login=False)
    acd.board.restore("a1", "on_call", call_id="c1", queue="q")
    daemon = Daemon(harness, acd)
    daemon.adopt("c1", bridged("e1", "a1", talked=20),
                 [channel("c1-caller", "c1-queue"), channel("c1-agent-1", "c1-queue")])
    assert acd.board.agents["a1"].state is S.ON_CALL and not acd.board.awaiting_adoption
    assert not commands(harness, "create_bridge")  # the bridge is kept, not rebuilt
    harness.switch.post(ChannelHungUp(channel_id="c1-agent-1"))
    closed = await daemon.closed("c1")
    assert closed.outcome == "completed"
    goodbye = commands(harness, "play", channel_id="c1-caller")
    assert [p["media"] for p in goodbye] == [["sound:goodbye"]]
    assert goodbye[0]["playback_id"] == "pb-c1-caller-4"  # fresh after the 3 it had
    assert commands(harness, "hangup", channel_id="c1-caller")
    assert commands(harness, "destroy_bridge", bridge_id="c1-queue")
    assert not commands(harness, "hangup", channel_id="c1-agent-1")  # already gone
    assert acd.board.agents["a1"].state is S.WRAP_UP
    disconnected = harness.log.calls("agent_disconnected")[0].data
    assert disconnected["by"] == "agent" and disconnected["talk_s"] >= 20


async def test_bridged_call_caller_hanging_up_frees_the_agent(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue()}, login=False)
    daemon = Daemon(harness, acd)  # the agent was not restored: adoption puts it on_call
    daemon.adopt("c1", bridged("e1", "a1", talked=2),
                 [channel("c1-caller", "c1-queue"), channel("c1-agent-1", "c1-queue")])
    assert acd.board.agents["a1"].state is S.ON_CALL
    harness.switch.post(ChannelHungUp(channel_id="c1-caller"))
    assert (await daemon.closed("c1")).outcome == "completed"
    assert commands(harness, "hangup", channel_id="c1-agent-1")
    assert harness.log.calls("agent_disconnected")[0].data["by"] == "caller"
    assert acd.board.agents["a1"].state is S.AVAILABLE


async def test_bridged_call_whose_agent_left_meanwhile_says_goodbye_at_once(
    harness: Harness,
) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue()}, login=False)
    acd.board.restore("a1", "on_call", call_id="c1", queue="q")
    daemon = Daemon(harness, acd)
    daemon.adopt("c1", bridged("e1", "a1", talked=2), [channel("c1-caller", "c1-queue")])
    assert (await daemon.closed("c1")).outcome == "completed"
    assert [p["media"] for p in commands(harness, "play")] == [["sound:goodbye"]]
    assert acd.board.agents["a1"].state is S.AVAILABLE


# -- waiting in a queue --------------------------------------------------------------------

async def test_waiting_callers_get_their_original_places_back(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue()}, login=False)
    acd.board.restore("a1", "paused", reason="break")  # staffed, not free
    daemon = Daemon(harness, acd)
    daemon.adopt("c2", [entered("e2", 5)], [channel("c2-caller")])  # entered second
    daemon.adopt("c1", [entered("e1", 9)], [channel("c1-caller")])
    await wait_for(lambda: len(commands(harness, "start_moh")) == 2)
    line = list(acd.lines["q"])
    assert [e.call_id for e in line] == ["c1", "c2"]
    assert [e.entry_id for e in line] == ["e1", "e2"]
    assert not harness.log.calls("queue_entered")  # readmitted, not entered twice
    assert [r.data["position"] for r in harness.log.calls("queue_readmitted")] == [1, 1]
    acd.board.unpause("a1")
    await wait_for(lambda: acd.board.agents["a1"].state is S.ON_CALL)
    assert harness.log.calls("agent_connected")[0].call_id == "c1"
    assert harness.log.calls("agent_connected")[0].data["wait_s"] >= 9
    harness.switch.post(ChannelHungUp(channel_id="c1-caller"))
    assert (await daemon.closed("c1")).outcome == "completed"
    harness.switch.post(ChannelHungUp(channel_id="c2-caller"))
    assert (await daemon.closed("c2")).outcome == "abandoned"
    left = {r.call_id: r.data for r in harness.log.calls("queue_left")}
    assert left["c1"]["reason"] == "answered" and left["c1"]["entry_id"] == "e1"
    assert left["c2"]["reason"] == "abandoned" and left["c2"]["entry_id"] == "e2"


async def test_max_wait_counts_from_the_original_entry_and_ends_in_the_fallback(
    harness: Harness,
) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue()}, login=False)
    acd.board.restore("a1", "paused", reason="break")
    daemon = Daemon(harness, acd)
    daemon.adopt("c1", [entered("e1", 9.7, max_wait=10)], [channel("c1-caller")])
    closed = await asyncio.wait_for(daemon.closed("c1"), 2)  # 0.3 s left, not 10
    assert closed.outcome == "timed_out"
    assert commands(harness, "continue_in_dialplan", channel_id="c1-caller")
    assert not commands(harness, "hangup", channel_id="c1-caller")
    assert harness.log.calls("queue_left")[0].data["reason"] == "timed_out"


async def test_waiting_in_an_unstaffed_queue_goes_to_the_fallback_as_no_agents(
    harness: Harness,
) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue()}, login=False)
    daemon = Daemon(harness, acd)
    daemon.adopt("c1", [entered("e1", 2)], [channel("c1-caller")])
    assert (await daemon.closed("c1")).outcome == "no_agents"
    assert commands(harness, "continue_in_dialplan", channel_id="c1-caller")


async def test_not_adopted_calls(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue()}, login=False)

    def plan(timeline: list[Entry], *channels: ChannelInfo) -> object:
        return plan_adoption(acd, call_id="c1", caller_channel="c1-caller", caller_number="",
                             timeline=timeline, channels={c.channel_id: c for c in channels})

    assert plan([Entry("playback_started")], channel("c1-caller")) is None  # IVR
    assert plan([entered("e1", 2, queue="gone")], channel("c1-caller")) is None  # no queue
    assert plan(bridged("e1", "a1", 2), channel("c1-caller")) is None  # bridge gone
    acd.board.login("a1")  # on another call's business: cannot be adopted by this one
    acd.board.offer("a1", "other", "q")
    assert plan(bridged("e1", "a1", 2), channel("c1-caller", "c1-queue")) is None


# -- agents after a restart ----------------------------------------------------------------

async def test_restore_puts_agents_back_and_frees_those_whose_call_is_gone(
    harness: Harness, engine: AsyncEngine,
) -> None:
    last = {"a1": {"to": "available"}, "a2": {"to": "paused", "pause_reason": "break"},
            "a3": {"to": "on_call", "call_id": "c3", "queue": "q"},
            "a4": {"to": "on_call", "call_id": "c4", "queue": "q"},
            "a5": {"to": "logged_out"}, "a6": {"to": "wrap_up", "call_id": "c6"}}
    async with session_factory(engine)() as session:
        for n, (agent_id, data) in enumerate(last.items()):
            for to in ("logged_out", "available"):  # older rows do not count
                session.add(AgentEventRow(record_id=f"old-{n}-{to}", agent_id=agent_id,
                                          at=utcnow(), kind="state", data={"to": to}))
            session.add(AgentEventRow(record_id=f"r{n}", agent_id=agent_id, at=utcnow(),
                                      kind="state", data=data))
        await session.commit()
    acd = await harness.build([agent(f"a{i}", ["q"]) for i in range(1, 8)],
                              {"q": queue()}, login=False)
    restored = await restore_agents(engine, acd)
    assert restored == {"a1": "available", "a2": "paused", "a3": "on_call", "a4": "on_call",
                        "a5": "logged_out", "a6": "available"}
    assert acd.board.agents["a2"].reason == "break"
    assert acd.board.agents["a7"].state is S.LOGGED_OUT  # no journal: as configured
    assert acd.board.awaiting_adoption == {"a3", "a4"}
    acd.adopt_connection("a3", "c3", "q", "c3-caller")
    assert acd.release_unadopted({"c3"}) == ["a4"]
    assert acd.board.agents["a3"].state is S.ON_CALL
    assert acd.board.agents["a4"].state is S.AVAILABLE
    assert ("on_call", "available", "call_not_adopted") in harness.log.states("a4")


async def test_a_wrap_up_held_for_a_required_disposition_is_held_again_after_a_restart(
    harness: Harness, engine: AsyncEngine,
) -> None:
    now = utcnow()

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    wrapping = {  # agent -> (call, queue, wrap-up started seconds ago)
        "a1": ("c1", "q", 5.0),  # held, no code yet: held again
        "a2": ("c2", "q", 5.0),  # its code came before the restart: free
        "a3": ("c3", "q", 40.0),  # wrap_up_max passed while the daemon was away: missing
        "a4": ("c4", "plain", 5.0),  # no disposition required: free
        "a5": ("c5", "q", 5.0),  # a code from an earlier agent of the call does not count
        "a6": ("c6", "q", 29.7),  # held for the 0.3 s left of wrap_up_max, then missing
    }
    given = [("c2", "a2", 4.0), ("c5", "a9", 10.0)]
    async with session_factory(engine)() as session:
        for agent_id, (call_id, queue_name, seconds) in wrapping.items():
            session.add(AgentEventRow(
                record_id=f"s-{agent_id}", agent_id=agent_id, at=ago(seconds),
                kind="state", data={"from": "on_call", "to": "wrap_up",
                                    "reason": "call_ended", "call_id": call_id,
                                    "queue": queue_name}))
        for call_id, agent_id, seconds in given:
            session.add(CallEventRow(record_id=f"d-{call_id}", call_id=call_id,
                                     at=ago(seconds), kind="disposition",
                                     data={"code": "1", "agent_id": agent_id}))
        await session.commit()
    codes = DispositionsConfig.model_validate(
        {"required": True, "wrap_up_max": 30, "codes": [{"code": "1", "label": "Done"}]})
    acd = await harness.build([agent(f"a{i}", ["q", "plain"]) for i in range(1, 7)],
                              {"q": queue(wrap_up=2.0, dispositions=codes),
                               "plain": queue(wrap_up=2.0)}, login=False)
    restored = await restore_agents(engine, acd)
    board = acd.board
    assert restored == {"a1": "wrap_up", "a2": "available", "a3": "wrap_up",
                        "a4": "available", "a5": "wrap_up", "a6": "wrap_up"}
    held = board.agents["a1"]
    assert held.awaiting_disposition and held.call_id == "c1" and held.queue == "q"
    assert held.wrap_up_until == ago(5.0) + timedelta(seconds=2.0)
    assert board.agents["a5"].awaiting_disposition
    await wait_for(lambda: board.agents["a3"].state is S.AVAILABLE, within=1.0)
    assert board.agents["a6"].state is S.WRAP_UP  # some of its hold is left
    await wait_for(lambda: board.agents["a6"].state is S.AVAILABLE, within=2.0)
    missing = {r.call_id: r.data for r in harness.log.calls("disposition_missing")}
    assert missing == {"c3": {"agent_id": "a3", "queue": "q"},
                       "c6": {"agent_id": "a6", "queue": "q"}}
    assert board.pause("a1", "break") is S.WRAP_UP  # the hold keeps a pause pending
    Dispositions(board, {"q": acd.queue_config("q")}, harness.log).give(
        "c1", "1", None, by="agent:a1", as_agent="a1")
    assert board.agents["a1"].state is S.PAUSED  # the code freed it at once (wrap-up over)
    assert ("logged_out", "wrap_up", "restored") in harness.log.states("a1")
    assert ("wrap_up", "paused", "disposition_given") in harness.log.states("a1")
    board.shutdown()
