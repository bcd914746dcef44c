"""IVR flows end to end: real Asterisk, the daemon as a child process, pjsua2 callers sending
RFC 4733 DTMF. Every assertion reads the store (call rows and timelines), not logs, and what
the caller heard: its recording of the call.

The scenarios don't share state (each has its own call, most their own flow), so one
module-scoped fixture runs them all at once against one daemon and keeps what the database
holds for each; the tests below then check one scenario each. The flows are in ``flows/``
(short timeouts), copied to a temporary folder the daemon watches, so the hot-reload scenario
can edit its file while the other calls go on. The prompts of the menu, barge-in and hours
flows (and ``goodbye``) are pure tones, one frequency each (:data:`PROMPT_TONES`), written into
that folder's ``prompts/`` by the fixture; :func:`heard_prompts` tells from a recording which
prompts the caller heard, in which order and when. The module runs on its own Asterisk, whose
prompts folder is that copy's.

The store is SQLite or PostgreSQL after ``CALLCONTROL_TEST_DB`` (marked ``postgres``: run in
both stages of scripts/run-tests.sh).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import math
import os
import shutil
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol import audio
from callcontrol.flows.loader import content_version
from callcontrol.pbx.ports import free_port
from callcontrol.sipua.client import PeerEvent, SipPeer
from callcontrol.store.db import create_engine
from callcontrol.store.queries import call_timeline, find_by_sip_call_id
from callcontrol.store.recording_queries import call_recordings, get_recording
from callcontrol.store.tables import CallEventRow, CallRow, RecordingRow
from callcontrol_testing.daemon import DaemonProcess, write_config
from callcontrol_testing.testbed import PbxTestbed, start_testbed
from callcontrol_testing.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

FLOWS = Path(__file__).parent / "flows"
ROUTES = {
    "301": "ivr_menu",
    "302": "ivr_gather",
    "303": "ivr_barge",
    "304": "ivr_http",
    "305": "ivr_voicemail",
    "306": "ivr_reload",
    "307": "ivr_hours",  # a schedule always open
    "308": "ivr_hours",  # a schedule never open
    "309": "ivr_survive",
    "310": "ivr_error",
    "311": "ivr_secret",
}
CALLER_TONE = 440
CALL_SECONDS = 60.0  # no scenario's call lasts this long
BARGE_DELAY = 1.0  # the caller lets the 30 s prompt play this long before pressing a key
BARGE_STOP = 0.5
"""Seconds within which the prompt stops, in the caller's ear, after it pressed a key: the
RFC 4733 event's length, Asterisk, the daemon, the stop request and the caller's jitter buffer
(measured: about 0.2 s)."""
PROMPT_TONES: dict[str, tuple[int, float]] = {
    "menu": (600, 1.0),
    "invalid": (800, 0.6),
    "option-one": (1200, 0.6),
    "option-two": (1400, 0.6),
    "nobody": (1600, 0.6),
    "goodbye": (1800, 0.6),
    "long-menu": (2000, 30.0),
    "open": (2200, 0.6),
    "closed": (2400, 0.6),
}
"""Test prompt -> (frequency Hz, seconds): 200 Hz apart, clear of the caller's 440 Hz and of
Asterisk's 1 kHz beep, so no two count for one another in a 100 ms window."""
CRM = {"111111": {"tier": "vip"}, "444444": {"tier": "standard"}}
CRM_SLOW = "222222"  # answers after the flow's 1 s timeout
CRM_BROKEN = "333333"  # answers 500
SECRET = "Zm9v+YmFy/s3cr3t=="  # the flows' secret api_key: +, / and = change when encoded
CRM_QUERIES: list[str] = []
"""The query strings the local CRM received."""



# --- the test prompts and what a caller heard of them -----------------------------------------


def write_prompts(folder: Path) -> None:
    """Write each of :data:`PROMPT_TONES` as ``folder/NAME.wav`` (8 kHz mono 16-bit PCM)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (hz, seconds) in PROMPT_TONES.items():
        audio.make_tone_wav(folder / f"{name}.wav", hz, seconds)


def prompt_seconds(media: list[str]) -> float:
    """How long the test prompts of one playback (its ``media`` URIs) play."""
    return sum(PROMPT_TONES[PurePosixPath(uri).name][1] for uri in media)


@dataclass(frozen=True)
class Heard:
    """One test prompt in a recording: its name, where its tone starts and ends (seconds)."""

    prompt: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        """How long it was heard."""
        return self.end - self.start


WINDOW = 0.1
"""Seconds of each window of the tone analysis."""


def heard_prompts(recording: Path, min_seconds: float = 0.2) -> list[Heard]:
    """The test prompts heard in ``recording``, in order: each run of adjacent 100 ms windows
    in which one prompt's tone carries at least half the energy. Runs shorter than
    ``min_seconds`` (a window across the end of one prompt and the start of the next) are
    dropped; silence or any other sound ends a run."""
    best: dict[float, tuple[str, float]] = {}
    for name, (hz, _) in PROMPT_TONES.items():
        for at, _, share in audio.tone_windows(recording, hz, window_s=WINDOW):
            if share >= 0.5 and share > best.get(at, ("", 0.0))[1]:
                best[at] = (name, share)
    runs: list[Heard] = []
    for at in sorted(best):
        name = best[at][0]
        if runs and runs[-1].prompt == name and math.isclose(runs[-1].end, at, abs_tol=0.01):
            runs[-1] = Heard(name, runs[-1].start, at + WINDOW)
        else:
            runs.append(Heard(name, at, at + WINDOW))
    return [run for run in runs if run.seconds >= min_seconds]


def names(heard: list[Heard]) -> list[str]:
    """The prompts heard, in order."""
    return [h.prompt for h in heard]


# --- what the store says about one call ----------------------------------------------------


@dataclass
class CallRecord:
    """One call as the database has it once it ended (its row and its timeline), and what the
    caller heard."""

    row: CallRow
    events: list[CallEventRow]
    caller_events: list[PeerEvent] = field(default_factory=list)
    heard: list[Heard] = field(default_factory=list)  # the test prompts the caller heard
    extra: dict[str, Any] = field(default_factory=dict)

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The data of every timeline entry of ``kind``."""
        return [e.data for e in self.events if e.kind == kind]

    def at(self, kind: str, **match: Any) -> datetime:
        """When the first entry of ``kind`` whose data matches was logged."""
        for event in self.events:
            if event.kind == kind and all(event.data.get(k) == v for k, v in match.items()):
                return event.at
        raise AssertionError(f"no {kind} {match} in {self.kinds()}")

    def kinds(self) -> list[str]:
        """The kinds of the timeline entries, in order."""
        return [e.kind for e in self.events]

    @property
    def path(self) -> list[str]:
        """The steps entered, in order."""
        return [e["step"] for e in self.of("step")]

    @property
    def saved(self) -> dict[str, Any]:
        """Every ``save_as`` / ``set`` value, by variable name (the last one wins)."""
        return {e["name"]: e["value"] for e in self.of("saved")}


# --- the harness: one daemon, its database, one SIP caller ----------------------------------


@dataclass
class Call:
    """A call placed by the test caller: the peer's id, the daemon's call id, and where the
    caller's recording of it goes (it starts at loop time ``media_at``)."""

    peer_id: str
    call_id: str
    sip_call_id: str
    recording: Path
    media_at: float

    def offset(self, loop_time: float) -> float:
        """Seconds into the recording at ``loop_time``."""
        return loop_time - self.media_at


@dataclass
class Harness:
    """The daemon under test, its store and the caller."""

    pbx: PbxTestbed
    daemon: DaemonProcess
    db: AsyncEngine
    caller: SipPeer
    flows_dir: Path

    async def dial(self, extension: str, name: str, play_wav: Path | None = None) -> Call:
        """Call ``extension``, recording what the caller hears into ``name``.wav; return once
        the daemon has the call's row."""
        uri = f"sip:{extension}@{self.pbx.sip_host}:{self.pbx.sip_port}"
        recording = self.flows_dir.parent / "heard" / f"{name}.wav"
        recording.parent.mkdir(exist_ok=True)
        peer_id = await self.caller.call(uri, play_wav=play_wav, record_wav=recording)
        await self.caller.wait_for("media", 15, call_id=peer_id)  # the recorder starts now
        media_at = asyncio.get_running_loop().time()
        confirmed = await self.caller.wait_for("confirmed", 15, call_id=peer_id)
        sip_call_id = confirmed["sip_call_id"]

        async def row() -> CallRow | None:
            rows = await find_by_sip_call_id(self.db, sip_call_id)
            return rows[0] if rows else None

        found = await eventually(row, 10, f"call row of {extension} ({sip_call_id})")
        return Call(peer_id, found.call_id, sip_call_id, recording, media_at)

    async def event(self, call: Call, kind: str, seconds: float = 15, **match: Any) -> CallEventRow:
        """Wait until the call's timeline has an entry of ``kind`` matching ``match``."""

        async def probe() -> CallEventRow | None:
            for event in await call_timeline(self.db, call.call_id):
                if event.kind == kind and all(event.data.get(k) == v for k, v in match.items()):
                    return event
            return None

        return await eventually(probe, seconds, f"{kind} {match} on {call.call_id}")

    async def played_out(self, call: Call, number: int) -> None:
        """Wait until the call's ``number``-th playback (of test prompts) has started, then
        for as long as its prompts play and a little more: the caller has heard it all."""

        async def probe() -> CallEventRow | None:
            started = [e for e in await call_timeline(self.db, call.call_id)
                       if e.kind == "playback_started"]
            return started[number - 1] if len(started) >= number else None

        playback = await eventually(probe, 15, f"playback {number} on {call.call_id}")
        await asyncio.sleep(prompt_seconds(playback.data["media"]) + 0.3)

    async def ended(self, call: Call, seconds: float = CALL_SECONDS) -> CallRecord:
        """Wait until the call's row is final, its flow's end is on the timeline and the
        caller's recording is on disk; the record holds what the caller heard."""

        async def probe() -> CallRecord | None:
            rows = await find_by_sip_call_id(self.db, call.sip_call_id)
            if not rows or rows[0].ended_at is None:
                return None
            events = await call_timeline(self.db, call.call_id)
            if not any(e.kind == "flow_ended" for e in events):
                return None
            return CallRecord(rows[0], events)

        record = await eventually(probe, seconds, f"end of call {call.call_id}")
        gone = await self.caller.wait_for("disconnected", 15, call_id=call.peer_id)
        assert gone["recording"] == str(call.recording), gone
        record.caller_events = [e for e in self.caller.events()
                                if e.get("call_id") == call.peer_id]
        record.heard = heard_prompts(call.recording)
        return record

    async def press(self, call: Call, digits: str) -> float:
        """Send ``digits`` as RFC 4733 events; return when (seconds into the recording)."""
        pressed = call.offset(asyncio.get_running_loop().time())
        await self.caller.send_dtmf(call.peer_id, digits)
        return pressed

    async def health_until(
        self, check: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """Poll ``/health`` until ``check(body)`` holds; return the body."""

        async def probe() -> dict[str, Any] | None:
            _, body = await self.daemon.health()
            return body if check(body) else None

        return await eventually(probe, 15, what)


async def crm_server() -> tuple[web.AppRunner, str]:
    """A local CRM: known accounts answer JSON, one is too slow, one answers 500."""

    async def customer(request: web.Request) -> web.Response:
        CRM_QUERIES.append(request.query_string)
        account = request.match_info["account"]
        if account == CRM_SLOW:
            await asyncio.sleep(3)
        if account == CRM_BROKEN:
            return web.json_response({"error": "boom"}, status=500)
        if account not in CRM:
            return web.json_response({"error": "unknown"}, status=404)
        return web.json_response({"account": account, **CRM[account]})

    app = web.Application()
    app.router.add_get("/crm/customers/{account}", customer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/crm"


# --- the scenarios (each returns what the store holds for its calls) -------------------------


async def menu_choice(h: Harness) -> CallRecord:
    call = await h.dial("301", "menu_choice")
    await h.played_out(call, 1)  # the menu
    await h.press(call, "2")
    record = await h.ended(call)
    record.extra["disconnected"] = next(e for e in record.caller_events
                                        if e.kind == "disconnected")
    return record


async def invalid_then_valid(h: Harness) -> CallRecord:
    call = await h.dial("301", "invalid_then_valid")
    await h.played_out(call, 1)  # the menu
    await h.press(call, "7")
    await h.event(call, "invalid", step="main", attempt=1)
    await h.played_out(call, 2)  # the invalid key's prompt, then the menu again
    await h.press(call, "1")
    return await h.ended(call)


async def silence(h: Harness) -> CallRecord:
    call = await h.dial("301", "silence")
    return await h.ended(call)


async def caller_hangs_up(h: Harness) -> CallRecord:
    call = await h.dial("301", "caller_hangs_up")
    await h.event(call, "step", step="main")
    await h.caller.hangup(call.peer_id)
    return await h.ended(call)


async def gather_with_hash(h: Harness) -> CallRecord:
    call = await h.dial("302", "gather_with_hash")
    await h.event(call, "step", step="account")
    await h.press(call, "1234#")
    return await h.ended(call)


async def barge_in(h: Harness) -> CallRecord:
    call = await h.dial("303", "barge_in")
    await h.event(call, "playback_started")
    await asyncio.sleep(BARGE_DELAY)  # let the prompt play a little: the key comes mid-prompt
    pressed = await h.press(call, "5")
    record = await h.ended(call)
    record.extra["pressed"] = pressed
    return record


def http_lookup(account: str) -> Callable[[Harness], Awaitable[CallRecord]]:
    async def scenario(h: Harness) -> CallRecord:
        call = await h.dial("304", f"http_{account}")
        await h.event(call, "step", step="account")
        await h.press(call, f"{account}#")
        return await h.ended(call)

    return scenario


def hours(extension: str) -> Callable[[Harness], Awaitable[CallRecord]]:
    async def scenario(h: Harness) -> CallRecord:
        return await h.ended(await h.dial(extension, f"hours_{extension}"))

    return scenario


async def voicemail(h: Harness) -> CallRecord:
    tone = audio.make_tone_wav(h.flows_dir.parent / "caller-440.wav", CALLER_TONE, 2.0)
    call = await h.dial("305", "voicemail", play_wav=tone)
    await h.event(call, "recording_started", step="message")
    # The recording runs until the caller presses '#': wait until it holds two seconds of tone.
    await asyncio.sleep(2.0)
    await h.press(call, "#")
    record = await h.ended(call)
    recording_id = record.saved.get("message")
    if recording_id:  # the message's row, once the daemon has sealed its file

        async def sealed() -> RecordingRow | None:
            row = await get_recording(h.db, recording_id)
            return row if row is not None and row.status != "recording" else None

        row = await eventually(sealed, 15, f"voicemail {recording_id} sealed")
        record.extra["row"] = row
        record.extra["rows"] = [r.id for r in await call_recordings(h.db, call.call_id)]
        path = h.pbx.config.path(h.pbx.config.asterisk.recordings_dir) / row.path
        if path.is_file():  # kept: the module's folders are gone when the tests run
            record.extra["file"] = shutil.copy(path, h.flows_dir.parent / "voicemail.wav")
        record.extra["spooled"] = sorted(
            p.name for p in h.pbx.instance.spool_recording_dir.glob(f"*{call.call_id}*"))
    return record


async def hot_reload(h: Harness) -> dict[str, Any]:
    path = h.flows_dir / "ivr_reload.yaml"
    v1_text = path.read_text()
    v1 = content_version(v1_text.encode())
    old = await h.dial("306", "reload_old")
    await h.event(old, "step", step="wait")

    v2_text = v1_text.replace("seen: v1", "seen: v2")
    _replace(path, v2_text)  # editors save by rename
    v2 = content_version(v2_text.encode())
    await h.health_until(
        lambda body: body["flows"]["live"]["ivr_reload"]["version"] == v2, "v2 live"
    )
    new = await h.dial("306", "reload_new")
    await h.event(new, "step", step="wait")

    _replace(path, v2_text.replace("failed: done", "failed: nowhere"))
    refused = await h.health_until(
        lambda body: any(p.endswith("ivr_reload.yaml") for p in body["flows"]["refused"]),
        "broken edit refused",
    )
    during = await h.dial("306", "reload_during")  # a call while the broken file is on disk
    await h.event(during, "step", step="wait")
    for call in (old, new, during):
        await h.press(call, "1")
    records = [await h.ended(call) for call in (old, new, during)]
    return {"v1": v1, "v2": v2, "old": records[0], "new": records[1], "during": records[2],
            "health": refused}


def _alias_bomb() -> str:
    """~300 bytes whose aliases expand to ten million values."""
    lines = ["a: &a [" + ", ".join(["lol"] * 10) + "]"]
    for level, name in enumerate("bcdefg"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{'abcdefg'[level]}"] * 10) + "]")
    return "\n".join(lines) + "\n"


# Files the YAML layer cannot read, each with where and why the watcher must refuse it.
HOSTILE: dict[str, tuple[bytes, str]] = {
    "bad_timestamp.yaml": (b"x: 2024-13-45\n", ":1:4: error: invalid value '2024-13-45'"),
    "nul_byte.yaml": (b"flow: nul\x00\n", ":1:10: error: character U+0000 is not allowed"),
    "deep.yaml": (b"[" * 3000, ":1:65: error: nested deeper than 64 levels"),
    "not_utf8.yaml": (b"flow: \xff\n", ":1:7: error: the file is not UTF-8 text"),
    "alias_bomb.yaml": (
        _alias_bomb().encode(),
        ":5:36: error: the data holds more than 100000 values once aliases are expanded",
    ),
}


async def error_exit(h: Harness) -> CallRecord:
    return await h.ended(await h.dial("310", "error_exit"))


async def secret_use(h: Harness) -> CallRecord:
    record = await h.ended(await h.dial("311", "secret_use"))
    # The journal's active segment holds every record since the daemon started (confirmed
    # segments are deleted later): keep what it says about this call now.
    journal = h.flows_dir.parent / "journal"
    record.extra["journal"] = b"".join(p.read_bytes() for p in sorted(journal.glob("*.jsonl")))
    return record


async def hostile_files(h: Harness) -> dict[str, Any]:
    path = h.flows_dir / "ivr_survive.yaml"
    v1_text = path.read_text()
    for name, (data, _) in HOSTILE.items():
        (h.flows_dir / name).write_bytes(data)
    # and a live flow broken the same way: its last good version must stay live
    _replace(path, v1_text + "since: 2024-13-45\n")
    expected = {*HOSTILE, path.name}
    refused = await h.health_until(
        lambda body: {Path(p).name for p in body["flows"]["refused"]} >= expected,
        "every hostile file refused",
    )
    v2_text = v1_text.replace("seen: v1", "seen: v2")
    _replace(path, v2_text)
    v2 = content_version(v2_text.encode())
    healed = await h.health_until(
        lambda body: body["flows"]["live"]["ivr_survive"]["version"] == v2, "good edit live"
    )
    call = await h.dial("309", "survive")
    await h.event(call, "step", step="wait")
    await h.press(call, "1")
    return {"v1": content_version(v1_text.encode()), "v2": v2, "refused": refused,
            "healed": healed, "call": await h.ended(call)}


async def recordings_check(config_file: Path) -> tuple[int, str]:
    """``callcontrol recordings check`` on the daemon's config: its exit status and output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcontrol", "--config", str(config_file), "recordings", "check",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


def _replace(path: Path, text: str) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(text)
    os.replace(temp, path)


SCENARIOS: dict[str, Callable[[Harness], Awaitable[Any]]] = {
    "menu_choice": menu_choice,
    "invalid_then_valid": invalid_then_valid,
    "silence": silence,
    "caller_hangs_up": caller_hangs_up,
    "gather_with_hash": gather_with_hash,
    "barge_in": barge_in,
    "http_vip": http_lookup("111111"),
    "http_standard": http_lookup("444444"),
    "http_timeout": http_lookup(CRM_SLOW),
    "http_500": http_lookup(CRM_BROKEN),
    "voicemail": voicemail,
    "hostile_files": hostile_files,
    "error_exit": error_exit,
    "secret_use": secret_use,
    "hours_open": hours("307"),
    "hours_closed": hours("308"),
    "hot_reload": hot_reload,  # last: it has a caller of its own
}

CALLS_PER_PEER = 4
"""A pjsua2 peer handles at most 4 calls at a time."""
CALLERS = 1 + math.ceil((len(SCENARIOS) - 1) / CALLS_PER_PEER)
"""SIP peers placing the calls: hot_reload (3 calls at once) has one; the others share."""


def _caller_of(index: int) -> int:
    if index == len(SCENARIOS) - 1:  # hot_reload, the last scenario
        return CALLERS - 1
    return index % (CALLERS - 1)


async def run_all(work: Path, db_url: str) -> dict[str, Any]:
    flows_dir = work / "flows"
    shutil.copytree(FLOWS, flows_dir)
    write_prompts(flows_dir / "prompts")
    async with contextlib.AsyncExitStack() as stack:
        runner, crm_url = await crm_server()
        stack.push_async_callback(runner.cleanup)
        for name in ("ivr_http.yaml", "ivr_secret.yaml"):
            flow = flows_dir / name
            flow.write_text(flow.read_text().replace("http://127.0.0.1:9/crm", crm_url))
        # An Asterisk of our own: it plays prompt files from flows_dir/prompts.
        pbx = await start_testbed(work / "pbx", f"ivr-{os.getpid()}", flows_dir=flows_dir)
        stack.push_async_callback(pbx.stop)
        http_port = free_port("127.0.0.1")
        config_file = write_config(pbx.config_file, work / "callcontrol.yaml", {
            "flows": {"dir": str(flows_dir), "routes": ROUTES, "watch": True,
                      "http_allow_hosts": [urlsplit(crm_url).netloc],
                      "secrets": {"api_key": {"env": "CALLCONTROL_TEST_API_KEY"}}},
            "database": {"url": db_url, "journal_dir": str(work / "journal")},
            "http": {"port": http_port, "tokens_file": str(work / "tokens.json")},
            "run": {"pid_file": str(work / "run" / "callcontrol.pid")},
        })
        daemon = DaemonProcess(
            config_file,
            http_port,
            work / "daemon.log",
            env={**os.environ, "CALLCONTROL_TEST_API_KEY": SECRET},
        )
        stack.push_async_callback(daemon.stop)
        db = create_engine(db_url)
        stack.push_async_callback(db.dispose)
        await daemon.start()
        callers = []
        for index in range(CALLERS):
            peer = SipPeer(name=f"ivr-caller-{index}", log_path=work / f"caller-{index}.log")
            callers.append(await stack.enter_async_context(peer))
            await peer.use_account(
                pbx.caller.username, pbx.caller.password, pbx.sip_host, pbx.sip_port
            )
        outcomes = await asyncio.gather(
            *(
                scenario(Harness(pbx, daemon, db, callers[_caller_of(index)], flows_dir))
                for index, scenario in enumerate(SCENARIOS.values())
            ),
            return_exceptions=True,
        )
        results = dict(zip(SCENARIOS, outcomes, strict=True))
        results["recordings_check"] = await recordings_check(config_file)
        results["daemon_log"] = daemon.log_tail(80)
        results["crm_queries"] = list(CRM_QUERIES)
        results["log"] = (work / "daemon.log").read_bytes()
        return results


@pytest.fixture(scope="module")
def ivr(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Iterator[dict[str, Any]]:
    """Every scenario's result, run side by side once for the module."""
    work = tmp_path_factory.mktemp("ivr")
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(run_all(work, module_db_url))
    finally:
        loop.close()


def result(ivr: dict[str, Any], name: str) -> Any:
    """One scenario's result; its exception (with the daemon's log) if it failed."""
    value = ivr[name]
    if isinstance(value, BaseException):
        raise AssertionError(f"scenario {name} failed; daemon log:\n{ivr['daemon_log']}") from value
    return value


WHOLE_SHORT = 0.2
"""Seconds a prompt heard whole may fall short of its length: a window at each end."""
WHOLE_LONG = 0.4
"""Seconds a prompt heard once may last beyond its length in the caller's ear: with the
machine's 2 cores loaded by other work, a 1.0 s menu prompt at the start of a call was heard
as 1.2 s (pjsua2's jitter buffer conceals late packets by repeating the audio it has, so the
tone goes on). Less than the shortest prompt (0.6 s), so a
prompt played twice back to back still fails."""


def assert_whole(heard: Heard) -> None:
    """Check that ``heard`` is its prompt played once, whole."""
    length = PROMPT_TONES[heard.prompt][1]
    assert length - WHOLE_SHORT <= heard.seconds <= length + WHOLE_LONG, heard


def heard_whole(call: CallRecord, *prompts: str) -> list[Heard]:
    """Check that the caller heard exactly ``prompts``, in this order, each one whole
    (:func:`assert_whole`); return what it heard."""
    assert names(call.heard) == list(prompts), call.heard
    for heard in call.heard:
        assert_whole(heard)
    return call.heard


# --- the tests -----------------------------------------------------------------------------


def test_menu_choice_and_the_flow_hangs_up(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "menu_choice")
    assert call.path == ["main", "two", "bye", "end"]
    assert call.of("digits") == [{"step": "main", "attempt": 1, "digits": "2"}]
    assert call.saved == {"choice": "2"}
    heard_whole(call, "menu", "option-two", "goodbye")
    assert (call.row.flow, call.row.outcome) == ("ivr_menu", "completed")
    assert call.row.ended_at is not None
    assert call.of("exit")[-1] == {"step": "end", "exit": "hangup", "to": None}
    assert "caller_hung_up" not in call.kinds()  # the flow hung up, not the caller
    assert call.extra["disconnected"]["connect_seconds"] > 0  # answered, then Asterisk's BYE


def test_invalid_key_then_a_valid_one(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "invalid_then_valid")
    assert call.of("invalid") == [{"step": "main", "attempt": 1, "digits": "7"}]
    assert call.of("digits") == [
        {"step": "main", "attempt": 1, "digits": "7"},
        {"step": "main", "attempt": 2, "digits": "1"},
    ]
    assert call.path == ["main", "one", "bye", "end"]
    assert call.saved == {"choice": "1"}
    assert call.row.outcome == "completed"
    # The invalid key's prompt between the two menus, then the valid key's branch.
    heard_whole(call, "menu", "invalid", "menu", "option-one", "goodbye")


def test_silence_until_failed(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "silence")
    assert call.of("timeout") == [
        {"step": "main", "attempt": 1},
        {"step": "main", "attempt": 2},
    ]
    assert {"step": "main", "exit": "failed", "to": "nobody"} in call.of("exit")
    assert call.path == ["main", "nobody", "bye", "end"]
    assert call.saved == {}
    assert "digits" not in call.kinds()
    menu, again, _, _ = heard_whole(call, "menu", "menu", "nobody", "goodbye")
    assert 1.3 <= again.start - menu.end <= 2.0  # the 1.5 s timeout, counted from its end


def test_caller_hangs_up_in_the_menu(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "caller_hangs_up")
    assert "caller_hung_up" in call.kinds()
    assert call.path == ["main", "note_hangup"]  # on_hangup ran after the hang-up
    assert call.saved == {"hung_up": "yes"}
    assert call.row.outcome == "completed"
    assert call.row.ended_at is not None


def test_digit_entry_ended_by_hash(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "gather_with_hash")
    assert call.of("digits") == [{"step": "account", "attempt": 1, "digits": "1234"}]
    assert call.saved == {"account": "1234"}
    assert call.path == ["account", "thanks", "end"]
    assert "timeout" not in call.kinds()  # '#' ended the entry, not the inter-digit timeout


def test_barge_in_stops_the_prompt_at_once(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "barge_in")
    entered = call.at("step", step="long_menu")
    pressed = call.at("barge_in", step="long_menu")
    moved_on = call.at("step", step="done")
    # The key came while the 30 s prompt played, and the flow moved on right away.
    assert BARGE_DELAY <= (pressed - entered).total_seconds() < 10
    assert (moved_on - pressed).total_seconds() < 1.0
    assert call.of("barge_in") == [{"step": "long_menu", "digit": "5"}]
    assert call.saved == {"key": "5"}
    assert call.path == ["long_menu", "done", "end"]
    # In the caller's ear: the 30 s prompt, from its start until just after the key, then
    # goodbye.
    assert names(call.heard) == ["long-menu", "goodbye"], call.heard
    prompt, goodbye = call.heard
    key = call.extra["pressed"]  # seconds into the caller's recording
    assert prompt.seconds >= BARGE_DELAY - 0.2, prompt
    assert key < prompt.end <= key + BARGE_STOP, (key, prompt)
    assert_whole(goodbye)


def test_http_lookup_success_branches_on_the_result(ivr: dict[str, Any]) -> None:
    vip: CallRecord = result(ivr, "http_vip")
    (http,) = vip.of("http")
    assert (http["status"], http["ok"]) == (200, True)
    assert isinstance(http["ms"], int) and http["ms"] < 1000
    assert vip.saved["customer"] == {"account": "111111", "tier": "vip"}
    assert vip.saved["route"] == "vip"
    assert vip.path == ["account", "lookup", "tier_check", "vip", "bye", "end"]

    standard: CallRecord = result(ivr, "http_standard")
    assert standard.saved["customer"]["tier"] == "standard"
    assert standard.path == ["account", "lookup", "tier_check", "regular", "bye", "end"]


def test_http_lookup_timeout_takes_the_error_exit(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "http_timeout")
    (http,) = call.of("http")
    assert (http["status"], http["ok"]) == (None, False)
    assert 900 <= http["ms"] < 2500  # the flow's 1 s timeout, not the server's 3 s
    assert "customer" not in call.saved
    assert call.saved["route"] == "down"
    assert call.path == ["account", "lookup", "crm_down", "bye", "end"]
    assert {"step": "lookup", "exit": "error", "to": "crm_down"} in call.of("exit")


def test_http_lookup_500_takes_the_error_exit(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "http_500")
    (http,) = call.of("http")
    assert (http["status"], http["ok"]) == (500, False)
    assert "customer" not in call.saved
    assert call.path == ["account", "lookup", "crm_down", "bye", "end"]


def test_voicemail_is_a_recording_of_the_call_holding_the_callers_audio(
    ivr: dict[str, Any],
) -> None:
    call: CallRecord = result(ivr, "voicemail")
    (started,) = [e for e in call.of("recording_started") if e.get("step") == "message"]
    (finished,) = call.of("recording_finished")
    assert finished["empty"] is False
    assert call.path == ["message", "bye", "end"]
    assert call.row.outcome == "voicemail"
    # its own row, written before Asterisk recorded, the call's only recording
    row: RecordingRow = call.extra["row"]
    assert call.saved["message"] == finished["recording"] == started["recording"] == row.id
    assert call.extra["rows"] == [row.id]
    assert (row.policy, row.channels, row.format, row.n, row.status) == (
        "voicemail", 1, "wav", 1, "complete")
    assert row.path == started["path"] == f"{row.started_at:%Y/%m/%d}/{call.row.call_id}-1.wav"
    assert row.started_at <= call.at("recording_started", step="message")
    assert call.extra["spooled"] == []  # moved out of Asterisk's spool
    # the file at the row's path is what the row says...
    wav: Path = call.extra["file"]
    data = wav.read_bytes()
    assert len(data) == row.size_bytes and hashlib.sha256(data).hexdigest() == row.sha256
    assert row.duration_s is not None and abs(audio.duration(wav) - row.duration_s) < 0.01
    # ...and what the caller sent: its tone, from the beep to the '#' (two seconds)
    assert 1.5 <= row.duration_s < 8.0
    assert audio.rms(wav) > 0.05
    assert audio.tone_seconds(wav, CALLER_TONE, min_ratio=0.5) > 1.0
    assert names(call.heard) == ["goodbye"]  # after the message (the rest is speech, a beep)


def test_recordings_check_is_clean_after_the_calls(ivr: dict[str, Any]) -> None:
    code, out = ivr["recordings_check"]
    assert code == 0, out


def test_hours_open_and_closed_take_their_branch(ivr: dict[str, Any]) -> None:
    opened: CallRecord = result(ivr, "hours_open")
    assert opened.path == ["which", "always_open", "open", "bye", "end"]
    assert {"step": "always_open", "exit": "open", "to": "open"} in opened.of("exit")
    heard_whole(opened, "open", "goodbye")

    closed: CallRecord = result(ivr, "hours_closed")
    assert closed.path == ["which", "never_open", "closed", "bye", "end"]
    assert {"step": "never_open", "exit": "closed", "to": "closed"} in closed.of("exit")
    heard_whole(closed, "closed", "goodbye")
    assert closed.row.outcome == opened.row.outcome == "completed"


def test_hot_reload_under_live_calls(ivr: dict[str, Any]) -> None:
    run = result(ivr, "hot_reload")
    old: CallRecord = run["old"]
    new: CallRecord = run["new"]
    during: CallRecord = run["during"]
    assert run["v1"] != run["v2"]
    # The call that started before the edit finished on the old version...
    assert (old.row.flow, old.row.flow_version) == ("ivr_reload", run["v1"])
    assert old.saved == {"seen": "v1"}
    # ...the next one ran the new version.
    assert new.row.flow_version == run["v2"]
    assert new.saved == {"seen": "v2"}
    # The broken edit was refused and the new version stayed live for calls made meanwhile.
    refusal = next(
        v for p, v in run["health"]["flows"]["refused"].items() if p.endswith("ivr_reload.yaml")
    )
    assert refusal["live_version"] == run["v2"]
    assert any("'nowhere'" in finding for finding in refusal["findings"])
    assert run["health"]["flows"]["live"]["ivr_reload"]["version"] == run["v2"]
    assert during.row.flow_version == run["v2"]
    assert during.saved == {"seen": "v2"}
    for call in (old, new, during):
        assert call.row.outcome == "completed"
        assert call.path == ["wait", "done", "end"]


def test_hostile_files_are_refused_and_the_next_good_edit_is_taken(
    ivr: dict[str, Any],
) -> None:
    run = result(ivr, "hostile_files")
    refused = {Path(p).name: v for p, v in run["refused"]["flows"]["refused"].items()}
    for name, (_, where) in HOSTILE.items():
        assert [f.split(name, 1)[1][: len(where)] for f in refused[name]["findings"]] == [where]
    broken = refused["ivr_survive.yaml"]
    assert broken["live_version"] == run["v1"]  # the last good version stayed live
    assert any(":18:8: error: invalid value '2024-13-45'" in f for f in broken["findings"])
    # the watcher lived on: the good edit went live, the hostile files stay refused
    healed = run["healed"]["flows"]
    assert "ivr_survive.yaml" not in {Path(p).name for p in healed["refused"]}
    assert set(HOSTILE) <= {Path(p).name for p in healed["refused"]}
    call: CallRecord = run["call"]
    assert (call.row.flow, call.row.flow_version) == ("ivr_survive", run["v2"])
    assert call.saved == {"seen": "v2"}
    assert call.path == ["wait", "done", "end"]
    assert call.row.outcome == "completed"


def test_a_prompt_value_asterisk_cannot_say_takes_the_error_exit(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "error_exit")
    assert call.path == ["say", "sorry", "end"]
    assert {"step": "say", "exit": "error", "to": "sorry"} in call.of("exit")
    (error,) = call.of("step_error")
    assert error["step"] == "say" and "not a number: 'Infinity'" in error["error"]
    assert (call.row.flow, call.row.outcome) == ("ivr_error", "completed")
    assert names(call.heard) == ["goodbye"]  # the caller heard the error path's prompt


def _secret_forms() -> list[bytes]:
    forms = {SECRET, SECRET.upper(), SECRET.lower(), SECRET[3:11], SECRET[3:11].upper()}
    for form in list(forms):
        forms |= {quote(form, safe=""), quote(form), quote_plus(form)}
    forms.add(base64.b64encode(SECRET.encode()).decode())
    return sorted({form.lower().encode() for form in forms})


def test_a_secret_and_its_derivations_never_reach_the_store_journal_or_log(
    ivr: dict[str, Any],
) -> None:
    call: CallRecord = result(ivr, "secret_use")
    assert call.path == ["lookup", "keep", "say", "end"]
    (http,) = call.of("http")
    assert http["ok"] is True and http["headers"] == ["Authorization"]
    assert http["url"].endswith("/customers/111111?key=***&up=***&part=***")
    # The secret was really used: the CRM got it in the query, in each form.
    (query,) = [parse_qs(q) for q in ivr["crm_queries"] if "key=" in q]
    assert query == {"key": [SECRET], "up": [SECRET.upper()], "part": [SECRET[3:11]]}
    journal = call.extra["journal"]
    assert call.row.call_id.encode() in journal  # the call's records were in the journal
    places = {
        "store": repr([(e.kind, e.data) for e in call.events]).encode(),
        "journal": journal,
        "log": ivr["log"],
    }
    for place, content in places.items():
        for form in _secret_forms():
            assert form not in content.lower(), f"{form!r} in the {place}"
