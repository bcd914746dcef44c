"""Fixtures for ACD unit tests: a recording log, a fake switch and an Acd builder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callcontrol.acd.router import Acd
from callcontrol.calls.manager import CallManager
from callcontrol.calls.router import EventRouter
from callcontrol.calls.session import CallSession
from callcontrol.config import AcdConfig, AgentConfig, QueueConfig, SecretRef
from callcontrol.fake_telephony import FakeTelephony
from callcontrol.store.records import AgentEvent, CallEvent, Outcome, Record
from callcontrol_testing.fake_call import FakeSwitch

SECRET = SecretRef(env="UNUSED")
TEARDOWN_S = 5.0
"""Seconds the cancelled call tasks and the stopping ACD get to end after a test."""


class Clock:
    """A settable clock starting at 2024-05-01 09:00 UTC: ``clock()`` reads it."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class ListLog:
    """An InteractionLog keeping records in a list."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> None:
        self.records.append(record)

    def calls(self, kind: str) -> list[CallEvent]:
        return [r for r in self.records if isinstance(r, CallEvent) and r.kind == kind]

    def states(self, agent_id: str) -> list[tuple[str, str, str]]:
        return [(r.data["from"], r.data["to"], r.data["reason"]) for r in self.records
                if isinstance(r, AgentEvent) and r.agent_id == agent_id]


def agent(agent_id: str, queues: list[str], **kw: Any) -> AgentConfig:
    return AgentConfig(id=agent_id, name=agent_id.upper(), endpoint=f"ep-{agent_id}",
                       password=SECRET, queues=queues, **kw)


def queue(**kw: Any) -> QueueConfig:
    kw.setdefault("ring_timeout", 0.3)
    kw.setdefault("wrap_up", 0.0)
    return QueueConfig(**kw)


async def wait_for(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Wait until ``predicate()`` holds, polling the loop; fail after ``within`` seconds.

    The ACD has no hook for every state a test looks at, so this polls (5 ms) under a bound.
    """
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling many unrelated states, bounded
            await asyncio.sleep(0.005)


async def no_flow(_session: CallSession) -> Outcome:
    """The flow runner of a call manager whose calls never run a flow."""
    raise AssertionError("this call manager runs no flow")


class Harness:
    """An Acd wired to a FakeSwitch and a ListLog; its callbacks run on service calls of a
    real :class:`CallManager` whose router takes what the switch's calls do not own."""

    def __init__(self) -> None:
        self.telephony = FakeTelephony()
        self.switch = FakeSwitch(self.telephony)
        self.log = ListLog()
        self.router = EventRouter()
        self.calls = CallManager(self.telephony, self.log, self.router, no_flow)
        self.switch.fallback = self.router.post
        self.acd: Acd | None = None
        self.tasks: list[asyncio.Task[Any]] = []

    async def build(self, agents: list[AgentConfig], queues: dict[str, QueueConfig],
                    *, login: bool = True, **kw: Any) -> Acd:
        kw.setdefault("settings", AcdConfig(callback_retry_delay=0.2, callback_ring_timeout=0.3))
        acd = Acd(agents, queues, log=self.log, post=self.switch.post,
                  services=self.calls.start_service, **kw)
        self.acd = acd
        if login:
            for a in agents:
                acd.board.login(a.id)
        await acd.start()
        return acd

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.append(task)
        return task


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    for task in h.tasks:
        task.cancel()
    async with asyncio.timeout(TEARDOWN_S):  # a task that ignores its cancel fails, never hangs
        await asyncio.gather(*h.tasks, return_exceptions=True)
        if h.acd is not None:
            await h.acd.stop()
