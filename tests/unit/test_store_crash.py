"""A process appending records is SIGKILLed; replaying its journal loses and doubles nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from callcontrol.store.db import create_engine
from callcontrol.store.migrations import upgrade
from callcontrol.store.queries import call_timeline
from callcontrol.store.writer import StoreWriter

# The child writes through a real StoreWriter and reports each record once append() returned.
# The first calls leave the writer time to commit; after them the child appends without ever
# yielding to its writer task, so the kill always leaves records only in the journal.
CHILD = """
import asyncio, sys
from pathlib import Path
from callcontrol.store.db import create_engine
from callcontrol.store.records import CallClosed, CallEvent, CallOpened
from callcontrol.store.writer import StoreWriter

async def main(url, journal):
    writer = StoreWriter(create_engine(url), Path(journal), batch_interval=0.002,
                         memory_queue_max=40)
    writer.start()
    call = 0
    while True:
        cid = f"call{call}"
        records = [CallOpened(call_id=cid, channel_id="ch" + cid)]
        records += [CallEvent(call_id=cid, kind="step", data={"n": n}) for n in range(4)]
        records.append(CallClosed(call_id=cid, outcome="completed"))
        for record in records:
            writer.append(record)
            print("R", type(record).__name__, cid, record.record_id, flush=True)
        call += 1
        if call < 50:  # first paced, so the writer commits some; then no await: a backlog
            await asyncio.sleep(0.001)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""

KILL_AFTER = 600


def run_child_until_killed(url: str, journal: Path) -> list[list[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(journal)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    reported: list[list[str]] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("R "):
                reported.append(line.split()[1:])
            if len(reported) >= KILL_AFTER:
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=10)
        child.stdout.close()  # type: ignore[union-attr]
    assert child.returncode == -signal.SIGKILL
    return reported


async def test_sigkill_then_replay_loses_and_doubles_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/store.db"
    journal = tmp_path / "journal"
    await upgrade(url)
    reported = await asyncio.to_thread(run_child_until_killed, url, journal)
    assert len(reported) == KILL_AFTER

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            before = (await conn.execute(sa.text("SELECT count(*) FROM call_events"))).scalar_one()
        writer = StoreWriter(engine, journal)
        writer.start()
        async with asyncio.timeout(20):
            await writer.flush()
        await writer.close()

        async with engine.connect() as conn:
            ids = Counter(
                (await conn.execute(sa.text("SELECT record_id FROM call_events"))).scalars()
            )
            calls = {
                row.call_id: row.outcome
                for row in await conn.execute(sa.text("SELECT call_id, outcome FROM calls"))
            }
        reported_events = [r for r in reported if r[0] == "CallEvent"]
        print(f"committed before replay: {before} of {len(reported_events)} events")
        assert before < len(reported_events), "the crash should leave records to replay"
        assert all(ids[record_id] == 1 for _, _, record_id in reported_events)
        for kind, call_id, _ in reported:
            assert call_id in calls
            if kind == "CallClosed":
                assert calls[call_id] == "completed"
        for call_id in {call_id for _, call_id, _ in reported_events}:
            steps = [e.data["n"] for e in await call_timeline(engine, call_id)]
            assert steps == sorted(steps)
    finally:
        await engine.dispose()
