"""Calls that reach Asterisk while the daemon is down get their final row (callcontrol.
fallback_ledger): real Asterisk, real SIP calls (pjsua2), the daemon as a child process.

The dialplan fallback answers them and writes the fallback ledger; the daemon imports it when it
starts (recovery) and, for a call still in the fallback then, when the call ends.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.fallback_ledger import EVENT_KIND, LEDGER_NAME, REASON_APP_DOWN, STATE_NAME
from callcontrol.pbx.testbed import PbxTestbed
from callcontrol.sipua.client import SipPeer
from callcontrol.store.db import create_engine
from callcontrol.store.queries import call_timeline, find_by_sip_call_id
from callcontrol.store.tables import CallRow

if TYPE_CHECKING:
    from conftest import PlatformDaemons  # tests/integration/conftest.py

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(platform_db_url: str) -> AsyncIterator[AsyncEngine]:
    """The test's store, read as the tests read it."""
    engine = create_engine(platform_db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def call_while_down(peer: SipPeer, pbx: PbxTestbed) -> tuple[str, str]:
    """Call 100; the fallback answers (the app is down). Returns (peer call id, SIP Call-ID)."""
    call_id = await peer.call(f"sip:100@{pbx.sip_host}:{pbx.sip_port}")
    confirmed = await peer.wait_for("confirmed", 10, call_id=call_id)
    await peer.wait_for("media", 10, call_id=call_id)
    sip_call_id = str(confirmed["sip_call_id"])
    assert sip_call_id
    return call_id, sip_call_id


async def hang_up(peer: SipPeer, call_id: str) -> None:
    """Hang up from the caller's side."""
    await peer.hangup(call_id)
    await peer.wait_for("disconnected", 10, call_id=call_id)


async def wait_file(path: Path, seconds: float) -> None:
    """Wait until ``path`` exists."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await asyncio.to_thread(path.exists):
        if loop.time() > deadline:
            pytest.fail(f"{path} not written after {seconds} s")
        await asyncio.sleep(0.1)


async def final_row(store: AsyncEngine, sip_call_id: str, seconds: float = 15.0) -> CallRow:
    """Wait until the call of ``sip_call_id`` has a final row; fail if it has several."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        rows = await find_by_sip_call_id(store, sip_call_id)
        assert len(rows) <= 1, f"{len(rows)} rows for {sip_call_id}"
        if rows and rows[0].ended_at is not None:
            return rows[0]
        if loop.time() > deadline:
            pytest.fail(f"no final row for {sip_call_id} after {seconds} s: {rows}")
        await asyncio.sleep(0.1)


async def test_calls_taken_by_the_fallback_while_the_daemon_is_down_get_one_final_row(
    pbx: PbxTestbed, platform_daemons: PlatformDaemons, platform_caller: SipPeer,
    store: AsyncEngine,
) -> None:
    ledger = pbx.paths.to_host(pbx.instance.dirs.log) / LEDGER_NAME
    daemon = await platform_daemons.start()
    # The store's first import (its recovery, once ARI is up) marks where its calls begin.
    await wait_file(platform_daemons.work_dir / "journal" / STATE_NAME, 15.0)
    daemon.kill()
    await daemon.wait_exit()

    # 1. A call while the daemon is dead: the fallback takes it, nobody opens a row.
    first, first_sip = await call_while_down(platform_caller, pbx)
    await asyncio.sleep(1.0)  # the caller hears the fallback prompt for a second
    await hang_up(platform_caller, first)
    assert first_sip in await asyncio.to_thread(ledger.read_text)
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o640  # Asterisk's umask 027: not for others
    assert await find_by_sip_call_id(store, first_sip) == []

    # The daemon comes back: recovery imports the ledger.
    daemon = await platform_daemons.start()
    row = await final_row(store, first_sip)
    assert (row.outcome, row.close_reason) == ("failed", REASON_APP_DOWN)
    assert row.extension == "100" and row.caller_number == pbx.caller.username
    assert row.channel_id and row.ended_at is not None and row.started_at < row.ended_at
    timeline = await call_timeline(store, row.call_id)
    assert [e.kind for e in timeline] == [EVENT_KIND]
    assert timeline[0].data["disposition"] == "app_down"
    assert timeline[0].data["stasis_status"] == "FAILED"

    # 2. Down again; a second call is still in the fallback when the daemon is back.
    daemon.kill()
    await daemon.wait_exit()
    second, second_sip = await call_while_down(platform_caller, pbx)
    await platform_daemons.start()
    await asyncio.sleep(1.0)  # recovery has run: the call is still in the fallback prompt
    assert await find_by_sip_call_id(store, second_sip) == []
    await hang_up(platform_caller, second)
    later = await final_row(store, second_sip)  # imported once the call ended
    assert later.outcome == "failed"

    # The first call, imported again by this start, still has exactly one row.
    [again] = await find_by_sip_call_id(store, first_sip)
    assert again.call_id == row.call_id
    assert len(await call_timeline(store, row.call_id)) == 1
