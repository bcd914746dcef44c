"""Call search on both backends: filters, keyset pages across equal start times, and a
disposition's fields on the call row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.agents import disposition_update
from callcontrol.store.call_search import CallFilter, call_stories, find_calls
from callcontrol.store.queries import get_call
from callcontrol.store.records import CallEvent, CallOpened, CallUpdated, Record
from tests.store.test_store_backends import engine, write

__all__ = ["engine"]  # the fixture, shared with the backend tests

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def test_pages_filters_and_dispositions(engine: AsyncEngine, tmp_path: Path) -> None:
    records: list[Record] = []
    for i in range(5):
        at = T0 + timedelta(seconds=i // 2)  # pairs start in the same second
        records += [CallOpened(call_id=f"c{i}", channel_id=f"ch{i}", caller_number="0612345678",
                               at=at),
                    CallUpdated(call_id=f"c{i}", fields={"queue": "dq", "agent_id": "a1"}, at=at),
                    CallEvent(call_id=f"c{i}", kind="saved", data={"name": "pin",
                                                                  "value": "****"}, at=at)]
    records.append(disposition_update("c3", "2", "Escalated", "to level 2", "agent:a1",
                                      T0 + timedelta(minutes=5)))
    await write(engine, tmp_path / "journal", records)

    seen: list[str] = []
    page = await find_calls(engine, CallFilter(caller_forms=["0612345678"]), 2)
    seen += [r.call_id for r in page.calls]
    while page.next is not None:
        page = await find_calls(engine, CallFilter(caller_forms=["0612345678"]), 2, page.next)
        seen += [r.call_id for r in page.calls]
    assert seen == ["c4", "c3", "c2", "c1", "c0"]

    found = await find_calls(engine, CallFilter(disposition="2", agent_id="a1", queue="dq"), 10)
    assert [r.call_id for r in found.calls] == ["c3"]
    row = await get_call(engine, "c3")
    assert row is not None
    assert (row.disposition, row.disposition_label, row.disposition_note, row.disposition_by,
            row.disposition_at) == ("2", "Escalated", "to level 2", "agent:a1",
                                    T0 + timedelta(minutes=5))
    window = CallFilter(started_from=T0 + timedelta(seconds=1),
                        started_to=T0 + timedelta(seconds=2))
    assert [r.call_id for r in (await find_calls(engine, window, 10)).calls] == ["c3", "c2"]
    assert (await call_stories(engine, ["c0"]))["c0"].inputs == {"pin": "****"}
