"""Calls found by filters, keyset-paged newest first, and what a customer history reads of each
(flow path, saved inputs, recordings), on a real SQLite store."""

from __future__ import annotations

from datetime import timedelta

from callcontrol.store.call_search import (
    CallFilter,
    call_stories,
    find_calls,
    handled_by,
    recordings_of,
)
from callcontrol.store.queries import get_call
from callcontrol.store.records import CallClosed, CallEvent, CallOpened, CallUpdated

from .conftest import NOW, Bench


async def _calls(bench: Bench) -> None:
    for i in range(7):
        at = NOW + timedelta(minutes=i)
        number = "0612345678" if i % 2 == 0 else "+390699999999"
        await bench.write(
            CallOpened(call_id=f"c{i}", channel_id=f"ch{i}", caller_number=number, at=at),
            CallUpdated(call_id=f"c{i}", at=at, fields={
                "queue": "dq" if i < 4 else "dm", "agent_id": f"a{i % 2}",
                "disposition": "missing" if i == 3 else "1"}),
            CallClosed(call_id=f"c{i}", outcome="completed" if i else "abandoned",
                       at=at + timedelta(seconds=30)))


async def test_pages_follow_each_other_newest_first_without_overlap(bench: Bench) -> None:
    await _calls(bench)
    seen: list[str] = []
    page = await find_calls(bench.engine, CallFilter(), 3)
    seen += [r.call_id for r in page.calls]
    while page.next is not None:
        page = await find_calls(bench.engine, CallFilter(), 3, page.next)
        seen += [r.call_id for r in page.calls]
    assert seen == [f"c{i}" for i in range(6, -1, -1)]
    last = await find_calls(bench.engine, CallFilter(), 7)
    assert last.next is None and len(last.calls) == 7


async def test_filters_all_apply(bench: Bench) -> None:
    await _calls(bench)

    async def ids(**where: object) -> list[str]:
        page = await find_calls(bench.engine, CallFilter(**where), 100)  # type: ignore[arg-type]
        return [r.call_id for r in page.calls]

    assert await ids(caller_forms=["0612345678", "+390612345678"]) == ["c6", "c4", "c2", "c0"]
    assert await ids(agent_id="a1", queue="dq") == ["c3", "c1"]
    assert await ids(outcome="abandoned") == ["c0"]
    assert await ids(disposition="missing") == ["c3"]
    assert await ids(started_from=NOW + timedelta(minutes=2),
                     started_to=NOW + timedelta(minutes=4)) == ["c3", "c2"]
    assert await ids(caller_forms=[]) == []


async def test_stories_read_the_path_and_the_masked_inputs(bench: Bench) -> None:
    await bench.write(
        CallOpened(call_id="s1", channel_id="ch", at=NOW),
        CallEvent(call_id="s1", kind="flow_started", data={"flow": "main"}),
        CallEvent(call_id="s1", kind="step", data={"flow": "main", "step": "menu"}),
        CallEvent(call_id="s1", kind="saved", data={"step": "pin", "name": "pin",
                                                   "value": "****"}),
        CallEvent(call_id="s1", kind="flow_started", data={"flow": "billing"}),
        CallEvent(call_id="s1", kind="step", data={"flow": "billing", "step": "ask"}),
        CallEvent(call_id="s1", kind="agent_connected", data={"agent_id": "bob"}))
    story = (await call_stories(bench.engine, ["s1", "none"]))["s1"]
    assert story.path == ["menu", "billing:ask"] and story.inputs == {"pin": "****"}
    row = await get_call(bench.engine, "s1")
    assert row is not None
    assert await handled_by(bench.engine, row, "bob")
    assert not await handled_by(bench.engine, row, "alice")


async def test_recordings_are_listed_per_call_in_order(bench: Bench) -> None:
    first, _ = await bench.finished("r1", n=1)
    second, _ = await bench.finished("r1", n=2)
    found = await recordings_of(bench.engine, ["r1", "r2"])
    assert [r.id for r in found["r1"]] == [first, second] and found["r2"] == []
