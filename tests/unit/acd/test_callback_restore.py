"""Pending callbacks survive a daemon restart (callcontrol.acd.callback_store), on a real
SQLite store.

Each test runs "generations" of the daemon over one database and one journal folder: a
generation journals through a :class:`StoreWriter` (the journal-first path), its ACD runs over
the fake switch, and it ends by stopping without a word about its callbacks (as a SIGKILL
would leave them: an attempt in flight has no concluding record). The next generation restores
the callbacks from the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from callcontrol.acd.agents import AgentState
from callcontrol.acd.callback_store import (
    load_pending_callbacks,
    pending_callbacks,
    restore_callbacks,
)
from callcontrol.acd.router import Acd
from callcontrol.calls.manager import CallManager
from callcontrol.calls.router import EventRouter
from callcontrol.clock import utcnow
from callcontrol.config import AcdConfig
from callcontrol.fake_telephony import FakeTelephony
from callcontrol.store.db import create_engine, session_factory
from callcontrol.store.migrations import upgrade
from callcontrol.store.tables import CallEventRow
from callcontrol.store.writer import StoreWriter
from callcontrol.telephony import ChannelHungUp
from callcontrol_testing.fake_call import FakeSwitch

from .conftest import agent, no_flow, queue, wait_for
from .test_adopt import Entry

S = AgentState
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


class Generation:
    """One daemon's life: its store writer, its ACD (agent ``a1`` in queue ``q``), a switch."""

    def __init__(self, engine: AsyncEngine, journal: Path, settings: AcdConfig) -> None:
        self.store = StoreWriter(engine, journal)
        self.telephony = FakeTelephony()
        self.switch = FakeSwitch(self.telephony)
        self.router = EventRouter()
        self.calls = CallManager(self.telephony, self.store, self.router, no_flow)
        self.switch.fallback = self.router.post
        self.settings = settings
        self.acd: Acd | None = None

    async def start(self) -> Acd:
        self.store.start()
        await self.store.flush()  # the journal's replay, as the daemon's start does
        acd = Acd([agent("a1", ["q"])], {"q": queue()}, log=self.store,
                  post=self.switch.post, services=self.calls.start_service,
                  settings=self.settings)
        acd.board.login("a1")
        acd.board.pause("a1", "break")  # staffed, not free
        await acd.start()
        self.acd = acd
        return acd

    async def die(self) -> None:
        if self.acd is not None:
            await self.acd.stop()
            self.acd = None
        await self.store.close()

    def request(self, call_id: str, *, number: str, seconds: float, priority: int = 0) -> None:
        """A caller entered ``seconds`` after T0 and confirmed a callback."""
        assert self.acd is not None
        entry = self.acd.enter("q", call_id, f"{call_id}-caller", number, priority=priority,
                               entered_at=T0 + timedelta(seconds=seconds))
        self.acd.request_callback(entry, number)

    async def serve_next(self) -> str:
        """Wait until a callback connects agent and customer, then hang the customer up;
        returns the call id of the callback."""
        assert self.acd is not None
        await self.store.flush()
        await wait_for(lambda: len(self.telephony.bridges) == 1, within=5)
        (bridge, legs), = self.telephony.bridges.items()
        self.switch.post(ChannelHungUp(channel_id=legs[1]))  # the customer's leg
        await wait_for(lambda: bridge not in self.telephony.bridges, within=5)
        return bridge.removesuffix("-callback")


class Bed:
    """The store shared by the generations."""

    def __init__(self, engine: AsyncEngine, journal: Path) -> None:
        self.engine = engine
        self.journal = journal
        self.generations: list[Generation] = []

    def generation(self, **settings: Any) -> Generation:
        settings.setdefault("callback_retry_delay", 0.2)
        settings.setdefault("callback_ring_timeout", 5.0)
        gen = Generation(self.engine, self.journal, AcdConfig(**settings))
        self.generations.append(gen)
        return gen

    async def events(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        query = (sa.select(CallEventRow).where(col(CallEventRow.kind) == kind)
                 .order_by(col(CallEventRow.id)))
        async with session_factory(self.engine)() as session:
            return [(r.call_id, r.data) for r in (await session.execute(query)).scalars()]


@pytest.fixture
async def bed(tmp_path: Path) -> AsyncIterator[Bed]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await upgrade(url)
    engine = create_engine(url)
    bed = Bed(engine, tmp_path / "journal")
    try:
        yield bed
    finally:
        for gen in bed.generations:
            if gen.acd is not None:
                await gen.die()
        await engine.dispose()


# -- reading a timeline --------------------------------------------------------------------

def test_a_timeline_tells_whether_a_callback_is_pending_and_its_attempts() -> None:
    entered = Entry("queue_entered", {"queue": "q", "entry_id": "e1", "priority": 2,
                                      "entered_at": T0.isoformat(), "skills": {"de": 1}})
    legacy = Entry("callback_requested", {"queue": "q", "entry_id": "e1", "number": "+49"})
    (old,) = pending_callbacks("c1", [entered, legacy])  # its place from queue_entered
    assert (old.priority, old.entered_at, old.skills, old.attempts) == (2, T0, {"de": 1}, 0)

    later = T0 + timedelta(minutes=5)
    requested = Entry("callback_requested", {"queue": "q", "entry_id": "e1", "number": "+49",
                                             "priority": 0, "entered_at": later.isoformat()})
    attempt = Entry("callback_attempt", {"queue": "q", "entry_id": "e1", "attempt": 1})
    retry = Entry("callback_retry", {"queue": "q", "entry_id": "e1", "attempts": 1,
                                     "not_before": later.isoformat()})
    (waiting,) = pending_callbacks("c1", [entered, requested])  # a merge's place wins
    assert (waiting.priority, waiting.entered_at, waiting.in_flight) == (0, later, False)
    (cut,) = pending_callbacks("c1", [entered, requested, attempt])
    assert cut.in_flight and cut.attempts == 0
    (retried,) = pending_callbacks("c1", [entered, requested, attempt, retry])
    assert not retried.in_flight and retried.attempts == 1 and retried.not_before == later
    no_answer = Entry("agent_no_answer", {"queue": "q", "agent_id": "a1", "entry_id": "e1"})
    (rang,) = pending_callbacks("c1", [entered, requested, attempt, no_answer])
    assert not rang.in_flight and rang.attempts == 0  # an agent no-answer is not counted
    for closing in ("callback_connected", "callback_failed", "callback_merged"):
        end = Entry(closing, {"queue": "q", "entry_id": "e1"})
        assert pending_callbacks("c1", [entered, requested, attempt, end]) == []
    assert pending_callbacks("c1", [entered]) == []


# -- restarts --------------------------------------------------------------------------------

async def test_callbacks_come_back_in_their_places_and_are_served_once(bed: Bed) -> None:
    first = bed.generation()
    acd = await first.start()
    first.request("served", number="+491", seconds=0)
    acd.board.unpause("a1")
    assert await first.serve_next() == "served"  # closed before the crash
    await wait_for(lambda: acd.board.agents["a1"].state is S.AVAILABLE)
    acd.board.pause("a1", "break")
    first.request("late", number="+492", seconds=20)
    first.request("early", number="+493", seconds=10)
    first.request("vip", number="+494", seconds=30, priority=5)
    await first.die()

    second = bed.generation()
    acd = await second.start()
    restored = await restore_callbacks(bed.engine, acd)
    assert [e.call_id for e in restored.entries] == ["vip", "early", "late"]
    assert [e.call_id for e in acd.lines["q"]] == ["vip", "early", "late"]
    assert all(e.is_callback and e.callback_attempts == 0 for e in acd.lines["q"])
    assert restored.interrupted == []
    # A caller who came in later (adopted, or new) waits behind them; one who entered before
    # them goes ahead.
    acd.enter("q", "newcomer", "newcomer-caller", "+495", entered_at=utcnow())
    acd.readmit("q", "adopted", "adopted-caller", "+496", entry_id="old",
                entered_at=T0 + timedelta(seconds=15))
    assert [e.call_id for e in acd.lines["q"]] == ["vip", "early", "adopted", "late",
                                                   "newcomer"]
    acd.lines["q"].remove(next(e for e in acd.lines["q"] if e.call_id == "adopted"))
    acd.lines["q"].remove(next(e for e in acd.lines["q"] if e.call_id == "newcomer"))
    await second.die()  # restarted again before anyone was served: same three, same places

    third = bed.generation()
    acd = await third.start()
    restored = await restore_callbacks(bed.engine, acd)
    assert [e.call_id for e in restored.entries] == ["vip", "early", "late"]
    acd.board.unpause("a1")
    served = [await third.serve_next() for _ in range(3)]
    assert served == ["vip", "early", "late"]
    await third.store.flush()
    await third.die()

    fourth = bed.generation()
    acd = await fourth.start()
    assert (await restore_callbacks(bed.engine, acd)).entries == []
    assert len(acd.lines["q"]) == 0
    connected = [c for c, _ in await bed.events("callback_connected")]
    assert sorted(connected) == ["early", "late", "served", "vip"]  # each once
    restored_events = [(c, d["position"]) for c, d in await bed.events("callback_restored")]
    assert restored_events == [("vip", 1), ("early", 2), ("late", 3)] * 2
    attempts = [(c, d["attempt"]) for c, d in await bed.events("callback_attempt")]
    assert attempts == [("served", 1), ("vip", 1), ("early", 1), ("late", 1)]


async def test_an_attempt_cut_by_the_crash_counts_as_failed_and_is_retried(bed: Bed) -> None:
    first = bed.generation(callback_attempts=3)
    acd = await first.start()
    first.switch.behaviour["PJSIP/+497"] = "busy"
    first.request("c1", number="+497", seconds=0)
    (pending,) = acd.lines["q"]
    acd.board.unpause("a1")
    await wait_for(lambda: pending.callback_attempts == 1)  # busy: attempt 1 failed
    first.switch.behaviour["PJSIP/+497"] = "ignore"  # attempt 2 rings and rings ...
    await wait_for(lambda: len(first.switch.dialed("PJSIP/+497")) == 2, within=5)
    await first.die()  # ... when the daemon dies

    second = bed.generation(callback_attempts=3)
    acd = await second.start()
    restored = await restore_callbacks(bed.engine, acd)
    (entry,) = restored.entries
    assert restored.interrupted == ["c1"]
    assert entry.callback_attempts == 2 and entry.not_before is not None
    await second.store.flush()
    retries = [(d["reason"], d["attempts"]) for _, d in await bed.events("callback_retry")]
    assert retries == [("customer_failed", 1), ("interrupted", 2)]
    await second.die()

    third = bed.generation(callback_attempts=3)  # again: nothing counted twice
    acd = await third.start()
    (entry,) = (await restore_callbacks(bed.engine, acd)).entries
    assert entry.callback_attempts == 2
    await third.store.flush()
    assert len(await bed.events("callback_retry")) == 2
    acd.board.unpause("a1")  # the last attempt, after the retry delay, connects
    assert await third.serve_next() == "c1"
    await third.store.flush()
    (attempt,) = [d for _, d in await bed.events("callback_attempt") if d["attempt"] == 3]
    assert attempt["entry_id"] == entry.entry_id
    assert len(await bed.events("callback_connected")) == 1
    await third.die()
    assert await load_pending_callbacks(bed.engine) == []


async def test_a_cut_last_attempt_gives_the_callback_up(bed: Bed) -> None:
    first = bed.generation(callback_attempts=1)
    acd = await first.start()
    first.switch.behaviour["PJSIP/+498"] = "ignore"
    first.request("c1", number="+498", seconds=0)
    acd.board.unpause("a1")
    await wait_for(lambda: bool(first.switch.dialed("PJSIP/+498")))
    await first.die()

    second = bed.generation(callback_attempts=1)
    acd = await second.start()
    restored = await restore_callbacks(bed.engine, acd)
    assert restored.entries == [] and restored.interrupted == ["c1"]
    assert len(acd.lines["q"]) == 0
    await second.store.flush()
    failed = [(c, d["reason"], d["attempts"]) for c, d in await bed.events("callback_failed")]
    assert failed == [("c1", "interrupted", 1)]
    assert await load_pending_callbacks(bed.engine) == []


async def test_held_callbacks_wait_for_release_and_a_readmitted_caller_merges_one(
    bed: Bed,
) -> None:
    first = bed.generation()
    await first.start()
    first.request("c1", number="+499", seconds=5)
    first.request("c2", number="+500", seconds=6)
    await first.die()

    second = bed.generation()
    acd = await second.start()
    acd.hold_callbacks()  # until the PBX link is up
    await restore_callbacks(bed.engine, acd)
    live = acd.readmit("q", "c3", "c3-caller", "+500", entry_id="e3", entered_at=T0)
    assert [e.call_id for e in acd.lines["q"]] == ["c3", "c1"]  # c2 merged into c3
    await second.store.flush()
    assert [(c, d["into_call_id"]) for c, d in await bed.events("callback_merged")] == [
        ("c2", "c3")]
    acd.leave(live, "abandoned")
    acd.board.unpause("a1")  # free, as a restored agent can be at once
    acd._dispatch()
    assert acd.board.agents["a1"].state is S.AVAILABLE  # not offered while held
    assert not second.telephony.commands
    acd.release_callbacks()
    assert await second.serve_next() == "c1"
