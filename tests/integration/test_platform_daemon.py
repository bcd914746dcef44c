"""Issue 2's "Must show" lines that need the daemon: real Asterisk, real SIP calls, real store.

Each test runs its own ``callcontrol run`` child process (``platform_daemons``) on the session
Asterisk, with the flows of tests/integration/flows_platform: extension 100 plays a long prompt
(hello-world + demo-congrats, about 32 s) and then a menu, so a call is still in its IVR step
when the test restarts Asterisk, kills the daemon or stops the database. The store is SQLite
or PostgreSQL after ``CALLCONTROL_TEST_DB`` (tests marked ``postgres`` run on both).

What proves the dialplan fallback: the caller's channel leaves the app for the context
``callcontrol-fallback`` (ARI shows where a channel is in the dialplan), the caller hears sound
after that, and Asterisk (we never hang up) ends the call once the ~6 s of fallback prompts
are over, long before the 32 s IVR prompt would have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol import audio
from callcontrol.config import load_config
from callcontrol.sipua.client import SipPeer
from callcontrol.store.db import create_engine
from callcontrol.store.queries import call_timeline, find_by_sip_call_id, open_calls
from callcontrol.store.tables import CallEventRow, CallRow
from callcontrol_testing.daemon import DaemonProcess
from callcontrol_testing.postgres import PrivatePostgres
from callcontrol_testing.testbed import PbxTestbed
from callcontrol_testing.waiting import eventually

if TYPE_CHECKING:
    from conftest import PlatformDaemons  # tests/integration/conftest.py

pytestmark = pytest.mark.integration

CALLER_TONE = 440  # what the caller sends: it must not come back (no echo, a real prompt)
HEARD_RMS = 0.02  # speech prompts measure about 0.1; silence about 0 (audio.SILENCE_FLOOR)
FALLBACK_CONTEXT = "callcontrol-fallback"
IVR_PROMPT_SECONDS = 30.0  # hello-world + demo-congrats: the fallback must end the call sooner
RECONNECT_LIMIT = 5.0  # issue 2: the daemon reconnects within 5 s of Asterisk being back
DB_OUTAGE_SECONDS = 10.0

T = TypeVar("T")


# -- helpers --------------------------------------------------------------------------------

@dataclass
class PlacedCall:
    """A call the caller placed: the peer's id, the SIP Call-ID it used, what it records."""

    peer: SipPeer
    id: str
    sip_call_id: str
    recording: Path
    media_at: float  # loop time the recording started (first active media)

    def offset(self, loop_time: float) -> float:
        """Seconds into the recording at ``loop_time``."""
        return max(0.0, loop_time - self.media_at)


async def dial(peer: SipPeer, pbx: PbxTestbed, folder: Path, name: str,
               exten: str = "100") -> PlacedCall:
    """Call ``exten`` sending the caller's tone and recording what comes back; returns once
    the call is answered and media flows."""
    tone = folder / "caller-tone.wav"
    if not tone.exists():
        audio.make_tone_wav(tone, CALLER_TONE, 1.0)
    recording = folder / f"{name}.wav"
    call_id = await peer.call(f"sip:{exten}@{pbx.sip_host}:{pbx.sip_port}", play_wav=tone,
                              record_wav=recording)
    confirmed = await peer.wait_for("confirmed", 10, call_id=call_id)
    await peer.wait_for("media", 10, call_id=call_id)
    assert confirmed["sip_call_id"], confirmed
    loop = asyncio.get_running_loop()
    return PlacedCall(peer, call_id, str(confirmed["sip_call_id"]), recording, loop.time())


async def hang_up(call: PlacedCall) -> None:
    """Hang up from the caller's side and wait until the recording is on disk."""
    await call.peer.hangup(call.id)
    await call.peer.wait_for("disconnected", 10, call_id=call.id)


async def wait_until(probe: Callable[[], Awaitable[T | None]], seconds: float, what: str) -> T:
    """Poll ``probe`` every 50 ms until it returns something truthy; fail after ``seconds``."""
    return await eventually(probe, seconds, what, interval=0.05)


async def call_row(store: AsyncEngine, sip_call_id: str) -> CallRow | None:
    """The one call row of ``sip_call_id`` (fails if there are several)."""
    rows = await find_by_sip_call_id(store, sip_call_id)
    assert len(rows) <= 1, f"{len(rows)} rows for SIP Call-ID {sip_call_id}"
    return rows[0] if rows else None


async def wait_row(store: AsyncEngine, call: PlacedCall, what: str,
                   done: Callable[[CallRow, list[CallEventRow]], bool],
                   seconds: float = 15.0) -> tuple[CallRow, list[CallEventRow]]:
    """Wait until the call's row and timeline satisfy ``done``."""

    async def probe() -> tuple[CallRow, list[CallEventRow]] | None:
        row = await call_row(store, call.sip_call_id)
        if row is None:
            return None
        timeline = await call_timeline(store, row.call_id)
        return (row, timeline) if done(row, timeline) else None

    return await wait_until(probe, seconds, f"call {call.sip_call_id}: {what}")


def kinds(timeline: list[CallEventRow]) -> list[str]:
    """The kinds of a timeline's entries, in order."""
    return [event.kind for event in timeline]


def is_final(row: CallRow, _timeline: list[CallEventRow]) -> bool:
    """The row has its end time and outcome."""
    return row.ended_at is not None and row.outcome is not None


def is_playing(_row: CallRow, timeline: list[CallEventRow]) -> bool:
    """The daemon owns the call and its IVR prompt is playing."""
    return "playback_started" in kinds(timeline)


def assert_timeline_complete(row: CallRow, timeline: list[CallEventRow]) -> None:
    """From ``call_arrived`` to ``call_ended``, each once, in time order."""
    names = kinds(timeline)
    assert names[0] == "call_arrived", names
    assert names[-1] == "call_ended", names
    assert names.count("call_arrived") == 1 and names.count("call_ended") == 1, names
    assert [e.at for e in timeline] == sorted(e.at for e in timeline), names
    assert timeline[-1].data.get("outcome") == row.outcome, timeline[-1].data


def segment_rms(path: Path, start: float, end: float) -> float:
    """RMS of the recording between ``start`` and ``end`` seconds."""
    samples, rate = audio.read_samples(path)
    part = samples[int(start * rate): int(end * rate)]
    return math.sqrt(sum(v * v for v in part) / len(part)) if part else 0.0


async def channel_dialplan(pbx: PbxTestbed, channel_id: str) -> dict[str, Any] | None:
    """Where ``channel_id`` is in the dialplan (ARI ``GET /channels/{id}``), None if gone."""
    headers = {"Authorization": aiohttp.encode_basic_auth(pbx.ari_user, pbx.ari_password)}
    async with aiohttp.ClientSession() as session, session.get(
        f"{pbx.ari_url}/ari/channels/{channel_id}", headers=headers,
        timeout=aiohttp.ClientTimeout(total=3),
    ) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        body = await resp.json()
    plan: dict[str, Any] = body["dialplan"]
    return plan


async def wait_in_fallback(pbx: PbxTestbed, channel_id: str, seconds: float) -> dict[str, Any]:
    """Wait until the channel runs the dialplan fallback; returns its dialplan location."""

    async def probe() -> dict[str, Any] | None:
        plan = await channel_dialplan(pbx, channel_id)
        assert plan is not None, f"channel {channel_id} hung up instead of the fallback"
        return plan if plan["context"] == FALLBACK_CONTEXT else None

    return await wait_until(probe, seconds, f"channel {channel_id} in {FALLBACK_CONTEXT}")


def parse_time(value: str | None) -> datetime:
    """An ISO-8601 time from ``/health``."""
    assert value is not None
    return datetime.fromisoformat(value)


@pytest.fixture
async def store(platform_db_url: str) -> AsyncIterator[AsyncEngine]:
    """The test's store, as the tests read it (``callcontrol.store.queries``)."""
    engine = create_engine(platform_db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def callcontrol_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``callcontrol --config CONFIG ARGS`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "callcontrol", "--config", str(config), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


# -- a call, end to end ---------------------------------------------------------------------

@pytest.mark.postgres
async def test_call_to_100_is_answered_heard_and_logged(
    pbx: PbxTestbed, platform_daemon: DaemonProcess, platform_caller: SipPeer,
    store: AsyncEngine, tmp_path: Path,
) -> None:
    call = await dial(platform_caller, pbx, tmp_path, "heard")
    await asyncio.sleep(3.0)  # the caller listens to the prompt for 3 s
    await hang_up(call)

    assert audio.rms(call.recording) > HEARD_RMS
    assert not audio.has_tone(call.recording, CALLER_TONE)  # a prompt, not its own echo
    row, timeline = await wait_row(store, call, "final row", is_final)
    assert row.sip_call_id == call.sip_call_id
    assert row.extension == "100"
    assert row.caller_number == pbx.caller.username
    assert row.flow == "platform_long"
    assert row.answered_at is not None and row.ended_at is not None
    assert row.started_at <= row.answered_at < row.ended_at
    assert row.outcome == "completed"
    assert_timeline_complete(row, timeline)
    assert {"answered", "playback_started", "caller_hangup"} <= set(kinds(timeline))
    assert timeline[0].data["sip_call_id"] == call.sip_call_id


# -- Asterisk restarted under the daemon ----------------------------------------------------

@pytest.mark.postgres
async def test_asterisk_restart_reconnects_and_closes_cut_calls_as_lost(
    pbx: PbxTestbed, platform_daemon: DaemonProcess, platform_caller: SipPeer,
    store: AsyncEngine, tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    _, before = await platform_daemon.health()
    cut = await dial(platform_caller, pbx, tmp_path, "cut")
    await wait_row(store, cut, "IVR prompt playing", is_playing)

    seen: list[tuple[int, bool]] = []  # (HTTP status, ari up) of /health during the restart

    async def watch_health() -> None:
        while True:
            status, body = await platform_daemon.health()
            seen.append((status, body["ari"]["up"]))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_health())
    try:
        await pbx.instance.restart()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    back_at = loop.time()
    assert (503, False) in seen, seen  # /health showed the gap while Asterisk was away

    async def reconnected() -> dict[str, Any] | None:
        status, body = await platform_daemon.health()
        ari = body["ari"]
        done = status == 200 and ari["up"] and ari["reconnects"] > before["ari"]["reconnects"]
        return body if done else None

    health = await wait_until(reconnected, 30, "/health: ARI up again")
    reconnect_s = loop.time() - back_at
    print(f"ARI reconnected {reconnect_s:.2f} s after Asterisk was back")
    assert reconnect_s < RECONNECT_LIMIT
    ari = health["ari"]
    assert ari["reconnects"] == before["ari"]["reconnects"] + 1
    assert parse_time(before["ari"]["last_up"]) < parse_time(ari["last_down"])
    assert parse_time(ari["last_down"]) < parse_time(ari["last_up"])

    # The cut call: the caller is gone, its row ends as lost, and no row is left open.
    await platform_caller.wait_for("disconnected", 10, call_id=cut.id)
    row, timeline = await wait_row(store, cut, "final row", is_final)
    assert row.outcome == "lost", (row.close_reason, kinds(timeline))
    assert "call_arrived" in kinds(timeline)
    assert await open_calls(store) == []

    # The next call works.
    after = await dial(platform_caller, pbx, tmp_path, "after-restart")
    await asyncio.sleep(2.0)
    await hang_up(after)
    assert audio.rms(after.recording) > HEARD_RMS
    row, timeline = await wait_row(store, after, "final row", is_final)
    assert row.outcome == "completed"
    assert_timeline_complete(row, timeline)


# -- the daemon killed with SIGKILL ---------------------------------------------------------

@pytest.mark.postgres
async def test_sigkill_caller_gets_the_fallback_and_restart_closes_interrupted(
    pbx: PbxTestbed, platform_daemons: PlatformDaemons, platform_caller: SipPeer,
    store: AsyncEngine, tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    daemon = await platform_daemons.start()
    call = await dial(platform_caller, pbx, tmp_path, "killed")
    row, _ = await wait_row(store, call, "IVR prompt playing", is_playing)
    assert row.ended_at is None
    await asyncio.sleep(1.5)  # the caller hears the IVR prompt for a while

    daemon.kill()
    assert await daemon.wait_exit() == -9
    killed_at = loop.time()
    # Asterisk keeps the caller in the app, still hearing the prompt that was playing.
    plan = await channel_dialplan(pbx, row.channel_id)
    assert plan is not None and plan["app_name"] == "Stasis", plan
    assert not platform_caller.events("disconnected")

    # The supervisor's restart: a new daemon on the same config, journal and store.
    await platform_daemons.start()
    plan = await wait_in_fallback(pbx, row.channel_id, 10)
    handed_at = loop.time()
    print(f"caller in the dialplan fallback {handed_at - killed_at:.2f} s after the SIGKILL")
    ended = await platform_caller.wait_for("disconnected", 20, call_id=call.id)
    bye_at = loop.time()

    # Asterisk hung up (we never did), after the fallback prompts, well before the IVR
    # prompt would have ended; the caller heard sound all along, fallback included.
    assert 2.0 < bye_at - handed_at < 15.0, bye_at - handed_at
    assert ended["connect_seconds"] < IVR_PROMPT_SECONDS
    assert segment_rms(call.recording, 0, call.offset(killed_at)) > HEARD_RMS
    assert segment_rms(call.recording, call.offset(handed_at),
                       call.offset(bye_at) - 0.5) > HEARD_RMS

    row, timeline = await wait_row(store, call, "final row", is_final)
    assert row.outcome == "interrupted", (row.close_reason, kinds(timeline))
    assert "recovered" in kinds(timeline)
    assert await open_calls(store) == []


# -- SIGTERM with a call in progress --------------------------------------------------------

@pytest.mark.postgres
async def test_sigterm_hands_the_call_to_the_fallback_and_exits_0(
    pbx: PbxTestbed, platform_daemons: PlatformDaemons, platform_caller: SipPeer,
    store: AsyncEngine, tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    daemon = await platform_daemons.start()
    grace = load_config(platform_daemons.config_file()).run.shutdown_grace
    call = await dial(platform_caller, pbx, tmp_path, "sigterm")
    row, _ = await wait_row(store, call, "IVR prompt playing", is_playing)

    asked_at = loop.time()
    stopping = asyncio.create_task(daemon.stop(timeout=grace + 15))
    await wait_in_fallback(pbx, row.channel_id, grace + 5)
    code = await stopping
    stop_s = loop.time() - asked_at
    print(f"daemon exited {stop_s:.2f} s after SIGTERM (grace {grace} s)")
    assert code == 0, daemon.log_tail()
    assert stop_s < grace + 3

    # The store was flushed before the exit: the row is final now, with its whole timeline.
    row, timeline = await wait_row(store, call, "final row", is_final, seconds=0.5)
    assert row.outcome == "interrupted", (row.close_reason, kinds(timeline))
    assert_timeline_complete(row, timeline)
    assert "handed_to_dialplan" in kinds(timeline)

    await platform_caller.wait_for("disconnected", 20, call_id=call.id)
    bye_at = loop.time()
    assert segment_rms(call.recording, call.offset(bye_at) - 3.0,
                       call.offset(bye_at) - 0.5) > HEARD_RMS


# -- the database unavailable for 10 s ------------------------------------------------------

@pytest.mark.postgres
async def test_database_down_10s_no_call_fails_no_record_lost_or_doubled(
    pbx: PbxTestbed, platform_pg: PrivatePostgres, platform_pg_url: str,
    platform_daemons: PlatformDaemons, platform_caller: SipPeer, tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    daemon = await platform_daemons.start("pg", {"database": {"url": platform_pg_url}})
    calls = await _calls_through_an_outage(pbx, platform_pg, daemon, platform_caller,
                                           tmp_path, loop)

    async def db_back() -> dict[str, Any] | None:
        _, body = await daemon.health()
        db: dict[str, Any] = body["db"]
        return db if db["up"] and db["pending"] == 0 else None

    db = await wait_until(db_back, 20, "/health: db up again, nothing pending")
    assert db["reconnects"] >= 1
    assert parse_time(db["last_down"]) < parse_time(db["last_up"])
    engine = create_engine(platform_pg_url)
    try:
        for call in calls:
            assert audio.rms(call.recording) > HEARD_RMS, call.recording.name
            row, timeline = await wait_row(engine, call, "final row", is_final)
            assert row.outcome == "completed", (row.close_reason, kinds(timeline))
            assert row.answered_at is not None
            assert_timeline_complete(row, timeline)
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT count(*) FROM calls"))).scalar_one()
            arrivals = (await conn.execute(sa.text(
                "SELECT count(*) FROM call_events WHERE kind = 'call_arrived'"
            ))).scalar_one()
    finally:
        await engine.dispose()
    assert rows == len(calls) and arrivals == len(calls)


async def _calls_through_an_outage(
    pbx: PbxTestbed, pg: PrivatePostgres, daemon: DaemonProcess, caller: SipPeer,
    folder: Path, loop: asyncio.AbstractEventLoop,
) -> list[PlacedCall]:
    """One call up before the outage, two placed during it, one after: all answered."""
    before = await dial(caller, pbx, folder, "db-before")
    await asyncio.sleep(1.5)  # each caller listens to the prompt for 1.5 s or more
    await asyncio.to_thread(pg.stop)
    stopped_at = loop.time()
    try:
        during = [await dial(caller, pbx, folder, "db-during-1")]
        await hang_up(before)

        async def db_down() -> bool:
            status, body = await daemon.health()
            return status == 503 and not body["db"]["up"]

        await wait_until(db_down, DB_OUTAGE_SECONDS, "/health: db down")
        await asyncio.sleep(1.5)
        during.append(await dial(caller, pbx, folder, "db-during-2"))
        await asyncio.sleep(1.5)
        for call in during:
            await hang_up(call)
        assert (await daemon.health())[0] == 503
        await asyncio.sleep(max(0.0, stopped_at + DB_OUTAGE_SECONDS - loop.time()))
    finally:
        await asyncio.to_thread(pg.start)
    after = await dial(caller, pbx, folder, "db-after")
    await asyncio.sleep(1.5)
    await hang_up(after)
    return [before, *during, after]


# -- bad input and the calls list -----------------------------------------------------------

def test_broken_config_exits_nonzero_with_its_place(
    platform_daemons: PlatformDaemons, tmp_path: Path
) -> None:
    bad = platform_daemons.config_file("broken", {"http": {"port": "not-a-port"}})
    lines = bad.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "not-a-port" in text)
    col = lines[line - 1].index("port:") + 1

    result = callcontrol_cli(bad, "run")
    assert result.returncode != 0
    assert f"{bad}:{line}:{col}: http.port: " in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.postgres
async def test_calls_list_prints_the_calls(
    pbx: PbxTestbed, platform_daemons: PlatformDaemons, platform_caller: SipPeer,
    store: AsyncEngine, tmp_path: Path,
) -> None:
    await platform_daemons.start()
    call = await dial(platform_caller, pbx, tmp_path, "listed")
    await asyncio.sleep(1.0)
    await hang_up(call)
    row, _ = await wait_row(store, call, "final row", is_final)
    config = platform_daemons.config_file()

    table = await asyncio.to_thread(callcontrol_cli, config, "calls", "list")
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.strip().splitlines()
    assert "outcome" in header and "call_id" in header
    assert any(row.call_id in line and "completed" in line and "100" in line for line in lines)

    listed = await asyncio.to_thread(callcontrol_cli, config, "calls", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    calls = json.loads(listed.stdout)
    mine = [c for c in calls if c["call_id"] == row.call_id]
    assert len(mine) == 1
    assert mine[0]["sip_call_id"] == call.sip_call_id
    assert mine[0]["outcome"] == "completed"
    assert mine[0]["ended_at"].endswith("Z") and mine[0]["answered_at"].endswith("Z")
