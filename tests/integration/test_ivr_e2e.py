"""IVR flows end to end: real Asterisk, the daemon as a child process, pjsua2 callers sending
RFC 4733 DTMF. Every assertion reads the store (call rows and timelines), not logs.

The scenarios don't share state (each has its own call, most their own flow), so one
module-scoped fixture runs them all at once against one daemon and keeps what the database
holds for each; the tests below then check one scenario each. The flows are in ``flows/``
(stock Asterisk sounds, short timeouts), copied to a temporary folder the daemon watches, so
the hot-reload scenario can edit its file while the other calls go on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol import audio
from callcontrol.flows.loader import content_version
from callcontrol.pbx.ports import free_port
from callcontrol.pbx.testbed import PbxTestbed
from callcontrol.sipua.client import PeerEvent, SipPeer
from callcontrol.store.db import create_engine
from callcontrol.store.queries import call_timeline, find_by_sip_call_id
from callcontrol.store.tables import CallEventRow, CallRow
from callcontrol.testing.daemon import DaemonProcess, write_config

pytestmark = pytest.mark.integration

FLOWS = Path(__file__).parent / "flows"
ROUTES = {
    "301": "ivr_menu",
    "302": "ivr_gather",
    "303": "ivr_barge",
    "304": "ivr_http",
    "305": "ivr_voicemail",
    "306": "ivr_reload",
    "307": "ivr_error",
    "308": "ivr_secret",
}
CALLER_TONE = 440
CALL_SECONDS = 60.0  # no scenario's call lasts this long
BARGE_DELAY = 1.0  # the caller lets the 30 s prompt play this long before pressing a key
CRM = {"111111": {"tier": "vip"}, "444444": {"tier": "standard"}}
CRM_SLOW = "222222"  # answers after the flow's 1 s timeout
CRM_BROKEN = "333333"  # answers 500
SECRET = "Zm9v+YmFy/s3cr3t=="  # the flows' secret api_key: +, / and = change when encoded
BEEP_HZ = 1000  # Asterisk's stock "beep" sound, the error path's prompt in ivr_error

T = TypeVar("T")


# --- what the store says about one call ----------------------------------------------------


@dataclass
class CallRecord:
    """One call as the database has it once it ended: its row and its timeline."""

    row: CallRow
    events: list[CallEventRow]
    caller_events: list[PeerEvent] = field(default_factory=list)
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


async def poll(probe: Callable[[], Awaitable[T | None]], seconds: float, what: str) -> T:
    """Ask ``probe`` every 50 ms until it returns something; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = await probe()
        if value is not None:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"{what}: not within {seconds} s")
        await asyncio.sleep(0.05)


@dataclass
class Call:
    """A call placed by the test caller: the peer's id and the daemon's call id."""

    peer_id: str
    call_id: str
    sip_call_id: str


@dataclass
class Harness:
    """The daemon under test, its store and the caller."""

    pbx: PbxTestbed
    daemon: DaemonProcess
    db: AsyncEngine
    caller: SipPeer
    flows_dir: Path

    async def dial(
        self, extension: str, play_wav: Path | None = None, record_wav: Path | None = None
    ) -> Call:
        """Call ``extension`` (recording what the caller hears into ``record_wav``); return
        once the daemon has the call's row."""
        uri = f"sip:{extension}@{self.pbx.sip_host}:{self.pbx.sip_port}"
        peer_id = await self.caller.call(uri, play_wav=play_wav, record_wav=record_wav)
        confirmed = await self.caller.wait_for("confirmed", 15, call_id=peer_id)
        sip_call_id = confirmed["sip_call_id"]

        async def row() -> CallRow | None:
            rows = await find_by_sip_call_id(self.db, sip_call_id)
            return rows[0] if rows else None

        found = await poll(row, 10, f"call row of {extension} ({sip_call_id})")
        return Call(peer_id, found.call_id, sip_call_id)

    async def event(self, call: Call, kind: str, seconds: float = 15, **match: Any) -> CallEventRow:
        """Wait until the call's timeline has an entry of ``kind`` matching ``match``."""

        async def probe() -> CallEventRow | None:
            for event in await call_timeline(self.db, call.call_id):
                if event.kind == kind and all(event.data.get(k) == v for k, v in match.items()):
                    return event
            return None

        return await poll(probe, seconds, f"{kind} {match} on {call.call_id}")

    async def ended(self, call: Call, seconds: float = CALL_SECONDS) -> CallRecord:
        """Wait until the call's row is final and its flow's end is on the timeline."""

        async def probe() -> CallRecord | None:
            rows = await find_by_sip_call_id(self.db, call.sip_call_id)
            if not rows or rows[0].ended_at is None:
                return None
            events = await call_timeline(self.db, call.call_id)
            if not any(e.kind == "flow_ended" for e in events):
                return None
            caller = [e for e in self.caller.events() if e.get("call_id") == call.peer_id]
            return CallRecord(rows[0], events, caller)

        return await poll(probe, seconds, f"end of call {call.call_id}")

    async def press(self, call: Call, digits: str) -> None:
        """Send ``digits`` as RFC 4733 events."""
        await self.caller.send_dtmf(call.peer_id, digits)

    async def health_until(
        self, check: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """Poll ``/health`` until ``check(body)`` holds; return the body."""

        async def probe() -> dict[str, Any] | None:
            _, body = await self.daemon.health()
            return body if check(body) else None

        return await poll(probe, 15, what)


CRM_QUERIES: list[str] = []
"""The query strings the local CRM received."""


async def crm_server() -> tuple[web.AppRunner, str]:
    """A local CRM: known accounts answer JSON, one is too slow, one answers 500. The query
    strings it receives go to :data:`CRM_QUERIES`."""

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
    call = await h.dial("301")
    await h.event(call, "step", step="main")
    await h.press(call, "2")
    record = await h.ended(call)
    record.extra["disconnected"] = await h.caller.wait_for("disconnected", 10, call_id=call.peer_id)
    return record


async def invalid_then_valid(h: Harness) -> CallRecord:
    call = await h.dial("301")
    await h.event(call, "step", step="main")
    await h.press(call, "7")
    await h.event(call, "invalid", step="main", attempt=1)
    await h.press(call, "1")
    return await h.ended(call)


async def silence(h: Harness) -> CallRecord:
    call = await h.dial("301")
    return await h.ended(call)


async def caller_hangs_up(h: Harness) -> CallRecord:
    call = await h.dial("301")
    await h.event(call, "step", step="main")
    await h.caller.hangup(call.peer_id)
    return await h.ended(call)


async def gather_with_hash(h: Harness) -> CallRecord:
    call = await h.dial("302")
    await h.event(call, "step", step="account")
    await h.press(call, "1234#")
    return await h.ended(call)


async def barge_in(h: Harness) -> CallRecord:
    call = await h.dial("303")
    await h.event(call, "step", step="long_menu")
    await asyncio.sleep(BARGE_DELAY)  # let the prompt play a little: the key comes mid-prompt
    await h.press(call, "5")
    return await h.ended(call)


def http_lookup(account: str) -> Callable[[Harness], Awaitable[CallRecord]]:
    async def scenario(h: Harness) -> CallRecord:
        call = await h.dial("304")
        await h.event(call, "step", step="account")
        await h.press(call, f"{account}#")
        return await h.ended(call)

    return scenario


async def voicemail(h: Harness) -> CallRecord:
    tone = audio.make_tone_wav(h.flows_dir.parent / "caller-440.wav", CALLER_TONE, 2.0)
    call = await h.dial("305", play_wav=tone)
    await h.event(call, "recording_started", step="message")
    # The recording runs until the caller presses '#': wait until it holds two seconds of tone.
    await asyncio.sleep(2.0)
    await h.press(call, "#")
    record = await h.ended(call)
    name = record.saved.get("message")
    if name:
        record.extra["file"] = h.pbx.instance.spool_recording_dir / f"{name}.wav"
    return record


async def error_exit(h: Harness) -> CallRecord:
    heard = h.flows_dir.parent / "caller-heard-error.wav"
    call = await h.dial("307", record_wav=heard)
    record = await h.ended(call)
    await h.caller.wait_for("disconnected", 10, call_id=call.peer_id)  # the recording is closed
    record.extra["heard"] = heard
    return record


async def secret_use(h: Harness) -> CallRecord:
    record = await h.ended(await h.dial("308"))
    # The journal's active segment holds every record since the daemon started (confirmed
    # segments are deleted later): keep what it says about this call now.
    journal = h.flows_dir.parent / "journal"
    record.extra["journal"] = b"".join(p.read_bytes() for p in sorted(journal.glob("*.jsonl")))
    return record


async def hot_reload(h: Harness) -> dict[str, Any]:
    path = h.flows_dir / "ivr_reload.yaml"
    v1_text = path.read_text()
    v1 = content_version(v1_text.encode())
    old = await h.dial("306")
    await h.event(old, "step", step="wait")

    v2_text = v1_text.replace("seen: v1", "seen: v2")
    _replace(path, v2_text)  # editors save by rename
    v2 = content_version(v2_text.encode())
    await h.health_until(
        lambda body: body["flows"]["live"]["ivr_reload"]["version"] == v2, "v2 live"
    )
    new = await h.dial("306")
    await h.event(new, "step", step="wait")

    _replace(path, v2_text.replace("failed: done", "failed: nowhere"))
    refused = await h.health_until(
        lambda body: any(p.endswith("ivr_reload.yaml") for p in body["flows"]["refused"]),
        "broken edit refused",
    )
    during = await h.dial("306")  # a call while the broken file is on disk
    await h.event(during, "step", step="wait")
    for call in (old, new, during):
        await h.press(call, "1")
    records = [await h.ended(call) for call in (old, new, during)]
    return {"v1": v1, "v2": v2, "old": records[0], "new": records[1], "during": records[2],
            "health": refused}


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
    "error_exit": error_exit,
    "secret_use": secret_use,
    "hot_reload": hot_reload,
}


CALLERS = 4
"""SIP peers placing the calls: a pjsua2 peer handles at most 4 calls at a time."""


def _caller_of(index: int) -> int:
    if index == len(SCENARIOS) - 1:  # hot_reload, the last scenario
        return CALLERS - 1
    return index % (CALLERS - 1)


async def run_all(pbx: PbxTestbed, work: Path) -> dict[str, Any]:
    flows_dir = work / "flows"
    shutil.copytree(FLOWS, flows_dir)
    runner, crm_url = await crm_server()
    for name in ("ivr_http.yaml", "ivr_secret.yaml"):
        flow = flows_dir / name
        flow.write_text(flow.read_text().replace("http://127.0.0.1:9/crm", crm_url))
    http_port = free_port("127.0.0.1")
    config_file = write_config(pbx.config_file, work / "callcontrol.yaml", {
        "flows": {"dir": str(flows_dir), "routes": ROUTES, "watch": True,
                  "http_allow_hosts": [urlsplit(crm_url).netloc],
                  "secrets": {"api_key": {"env": "CALLCONTROL_TEST_API_KEY"}}},
        "database": {"url": f"sqlite+aiosqlite:///{work / 'ivr.db'}",
                     "journal_dir": str(work / "journal")},
        "http": {"port": http_port, "tokens_file": str(work / "tokens.json")},
        "run": {"pid_file": str(work / "run" / "callcontrol.pid")},
    })
    daemon = DaemonProcess(
        config_file,
        http_port,
        work / "daemon.log",
        env={**os.environ, "CALLCONTROL_TEST_API_KEY": SECRET},
    )
    db = create_engine(f"sqlite+aiosqlite:///{work / 'ivr.db'}")
    try:
        await daemon.start()
        async with contextlib.AsyncExitStack() as stack:
            callers = []
            for index in range(CALLERS):
                peer = SipPeer(name=f"ivr-caller-{index}", log_path=work / f"caller-{index}.log")
                callers.append(await stack.enter_async_context(peer))
                await peer.use_account(
                    pbx.caller.username, pbx.caller.password, pbx.sip_host, pbx.sip_port
                )
            # hot_reload (3 calls at once) gets a caller of its own; the others share.
            outcomes = await asyncio.gather(
                *(
                    scenario(Harness(pbx, daemon, db, callers[_caller_of(index)], flows_dir))
                    for index, scenario in enumerate(SCENARIOS.values())
                ),
                return_exceptions=True,
            )
        results = dict(zip(SCENARIOS, outcomes, strict=True))
        results["daemon_log"] = daemon.log_tail(80)
        results["crm_queries"] = list(CRM_QUERIES)
        results["work"] = work  # the database and the daemon's log, read once it stopped
        return results
    finally:
        await db.dispose()
        await daemon.stop()
        await runner.cleanup()


@pytest.fixture(scope="module")
def ivr(pbx: PbxTestbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every scenario's result, run side by side once for the module."""
    work = tmp_path_factory.mktemp("ivr")
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(run_all(pbx, work))
    finally:
        loop.close()


def result(ivr: dict[str, Any], name: str) -> Any:
    """One scenario's result; its exception (with the daemon's log) if it failed."""
    value = ivr[name]
    if isinstance(value, BaseException):
        raise AssertionError(f"scenario {name} failed; daemon log:\n{ivr['daemon_log']}") from value
    return value


# --- the tests -----------------------------------------------------------------------------


def test_menu_choice_and_the_flow_hangs_up(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "menu_choice")
    assert call.path == ["main", "two", "bye", "end"]
    assert call.of("digits") == [{"step": "main", "attempt": 1, "digits": "2"}]
    assert call.saved == {"choice": "2", "picked": "two"}
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
    assert call.saved == {"choice": "1", "picked": "one"}
    assert call.row.outcome == "completed"


def test_silence_until_failed(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "silence")
    assert call.of("timeout") == [
        {"step": "main", "attempt": 1},
        {"step": "main", "attempt": 2},
    ]
    assert {"step": "main", "exit": "failed", "to": "nobody"} in call.of("exit")
    assert call.path == ["main", "nobody", "bye", "end"]
    assert call.saved == {"picked": "none"}
    assert "digits" not in call.kinds()


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


def test_voicemail_is_a_non_silent_wav(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "voicemail")
    (finished,) = call.of("recording_finished")
    assert finished["empty"] is False
    assert call.saved["message"] == finished["recording"]
    assert call.path == ["message", "bye", "end"]
    assert call.row.outcome == "voicemail"
    wav: Path = call.extra["file"]
    assert audio.duration(wav) >= 1.5
    assert audio.rms(wav) > 0.05
    assert audio.has_tone(wav, CALLER_TONE, min_seconds=1.0)


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


def test_a_prompt_value_asterisk_cannot_say_takes_the_error_exit(ivr: dict[str, Any]) -> None:
    call: CallRecord = result(ivr, "error_exit")
    assert call.path == ["say", "sorry", "end"]
    assert {"step": "say", "exit": "error", "to": "sorry"} in call.of("exit")
    (error,) = call.of("step_error")
    assert error["step"] == "say" and "not a number: 'Infinity'" in error["error"]
    assert (call.row.flow, call.row.outcome) == ("ivr_error", "completed")
    # The caller heard the error path's prompt: four stock beeps.
    assert audio.tone_seconds(call.extra["heard"], BEEP_HZ) >= 0.5


def _secret_forms() -> list[bytes]:
    forms = {SECRET, SECRET.upper(), SECRET.lower(), SECRET[3:11], SECRET[3:11].upper()}
    for form in list(forms):
        forms |= {quote(form, safe=""), quote(form), quote_plus(form)}
    forms.add(base64.b64encode(SECRET.encode()).decode())
    return sorted({form.encode() for form in forms} | {f.lower().encode() for f in forms})


def test_a_secret_and_its_derivations_never_reach_the_store_journal_or_log(
    ivr: dict[str, Any],
) -> None:
    call: CallRecord = result(ivr, "secret_use")
    assert call.path == ["lookup", "keep", "say", "end"]
    (http,) = call.of("http")
    assert http["ok"] is True and http["headers"] == ["Authorization"]
    assert http["url"].endswith("/customers/111111?key=***&up=***&part=***")
    # The secret was really used: the CRM got it in the query, in all three forms.
    assert f"key={quote(SECRET, safe='')}&up={quote(SECRET.upper(), safe='')}" in "".join(
        ivr["crm_queries"]
    )
    work: Path = ivr["work"]
    journal = call.extra["journal"]
    assert call.row.call_id.encode() in journal  # the call's records were in the journal
    places = {
        "timeline": repr([e.data for e in call.events]).encode(),
        "journal": journal,
        "database": b"".join(p.read_bytes() for p in work.glob("ivr.db*")),
        "log": (work / "daemon.log").read_bytes(),
    }
    for place, content in places.items():
        for form in _secret_forms():
            assert form.lower() not in content.lower(), f"{form!r} in the {place}"
