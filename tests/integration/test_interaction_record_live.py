"""The interaction record on real Asterisk (issue 12): dispositions from a real headset and the
API holding the agent in wrap-up, the customer history of a real caller number, recordings
served with byte ranges to the right tokens only, tokens revoked while the daemon runs, and
``recordings check`` on the daemon's store.

One daemon (child process) serves the module on the session's Asterisk: agents ``a1`` (queue
``dq``: a required disposition, ``wrap_up_max`` 30 s) and ``a2`` (queue ``dm``: a required
disposition with ``wrap_up_max`` 2 s). Calls come from the testbed's customer caller source,
whose caller id is the national number ``0612345678`` (``site.country_code: "39"``, no
national prefix: ``+390612345678``). Recording files are planted through the store (row +
file, the figures measured) on calls the agents really handled.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlmodel import col

from callcontrol import audio
from callcontrol.api.auth import TokenStore
from callcontrol.config import load_config
from callcontrol.pbx.ports import free_port
from callcontrol.recording.files import measure
from callcontrol.recording.paths import relative_path
from callcontrol.sipua.client import SipPeer
from callcontrol.store.db import create_engine, session_factory
from callcontrol.store.recording_queries import apply_now, get_recording
from callcontrol.store.records import RecordingFinished, RecordingStarted, new_id
from callcontrol.store.tables import AgentEventRow
from callcontrol_testing.daemon import DaemonApi, DaemonProcess, write_config
from callcontrol_testing.testbed import CUSTOMER_NUMBERS, PbxTestbed
from callcontrol_testing.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.postgres,
              pytest.mark.asyncio(loop_scope="module")]

FLOWS = Path(__file__).parent / "flows_record"
NATIONAL = CUSTOMER_NUMBERS[0]
E164 = "+39" + NATIONAL
WRAP_UP = 0.5
QUEUES = {
    "dq": {"ring_timeout": 8, "wrap_up": WRAP_UP, "dispositions": {
        "required": True, "wrap_up_max": 30, "codes": [
            {"code": "1", "label": "Resolved"},
            {"code": "2", "label": "Callback promised"},
            {"code": "3", "label": "Escalated", "requires_note": True}]}},
    "dm": {"ring_timeout": 8, "wrap_up": 0, "dispositions": {
        "required": True, "wrap_up_max": 2, "codes": [{"code": "1", "label": "Resolved"}]}},
}


@dataclass
class Bed:
    """The module's daemon, its store and API clients by token."""

    pbx: PbxTestbed
    daemon: DaemonProcess
    config_file: Path
    recordings: Path
    db_url: str
    session: aiohttp.ClientSession
    tokens: dict[str, str]

    def api(self, who: str) -> DaemonApi:
        """The API with the token of ``who`` (admin, sup, a1, a2)."""
        return DaemonApi(self.session, self.daemon.url, self.tokens[who])

    async def agent(self, agent_id: str) -> dict[str, Any]:
        status, body = await self.api("admin")("GET", f"/api/agents/{agent_id}")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    async def wait_agent(self, agent_id: str, state: str, timeout: float = 15) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            agent = await self.agent(agent_id)
            return agent if agent["state"] == state else None
        found: dict[str, Any] = await eventually(check, timeout, f"{agent_id} {state}")
        return found

    async def call(self, call_id: str) -> dict[str, Any]:
        status, body = await self.api("sup")("GET", f"/api/calls/{call_id}")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    async def wait_timeline(self, call_id: str, kind: str, **data: Any) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            return next((e for e in (await self.call(call_id))["timeline"]
                         if e["kind"] == kind and all(e["data"].get(k) == v
                                                      for k, v in data.items())), None)
        found: dict[str, Any] = await eventually(check, 15, f"{kind} {data} on {call_id}")
        return found

    async def customer_call_ids(self) -> set[str]:
        """The ids of the customer's calls (found by the caller filter)."""
        status, calls = await self.api("sup")("GET", f"/api/calls?caller={NATIONAL}&limit=1000")
        assert status == 200, calls
        return {c["call_id"] for c in calls}

    async def new_call(self, known: set[str]) -> str:
        """The id of a call of the customer's not in ``known``."""
        async def check() -> str | None:
            return next(iter(await self.customer_call_ids() - known), None)
        found: str = await eventually(check, 10, "a new call from the customer")
        return found

    async def cli(self, *args: str) -> tuple[int, str]:
        """``callcontrol --config DAEMON ARGS``: exit status and stdout."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callcontrol", "--config", str(self.config_file), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bed(pbx: PbxTestbed, tmp_path_factory: pytest.TempPathFactory, module_db_url: str
              ) -> AsyncIterator[Bed]:
    work = tmp_path_factory.mktemp("record")
    tokens_file = work / "tokens.json"
    store = TokenStore(tokens_file)
    tokens = {"admin": store.create("rec-admin", "admin"),
              "sup": store.create("rec-sup", "supervisor"),
              "a1": store.create("a1-desk", "agent", "a1"),
              "a2": store.create("a2-desk", "agent", "a2")}
    source = json.loads(pbx.config_file.read_text())
    queues = {"a1": ["dq"], "a2": ["dm"]}
    agents = [{**agent, "queues": queues[agent["id"]]} for agent in source["agents"]]
    recordings = work / "recordings"
    config = write_config(pbx.config_file, work / "daemon.yaml", {
        "site": {"country_code": "39", "national_prefix": ""},
        "asterisk": {"recordings_dir": str(recordings)},
        "database": {"url": module_db_url, "journal_dir": str(work / "journal")},
        "http": {"port": free_port(), "tokens_file": str(tokens_file)},
        "flows": {"dir": str(FLOWS), "routes": {"410": "record", "411": "record"},
                  "watch": False},
        "agents": agents,
        "queues": QUEUES,
        "run": {"pid_file": str(work / "run" / "daemon.pid"), "shutdown_grace": 2.0},
    })
    daemon = DaemonProcess(config, load_config(config).http.port, work / "daemon.log")
    await daemon.start(40)
    running: Bed | None = None
    try:
        async with aiohttp.ClientSession() as session:
            running = Bed(pbx, daemon, config, recordings, module_db_url, session, tokens)
            yield running
    finally:  # the daemon running now: a test may have restarted it (a new process)
        await (running.daemon if running is not None else daemon).stop()


@pytest_asyncio.fixture(loop_scope="module")
async def customer(bed: Bed, tmp_path: Path) -> AsyncIterator[SipPeer]:
    """A pjsua2 peer calling as the customer number."""
    account = bed.pbx.customers[NATIONAL]
    async with SipPeer(name="customer", log_path=tmp_path / "customer.log") as peer:
        await peer.use_account(account.username, account.password, bed.pbx.sip_host,
                               bed.pbx.sip_port)
        yield peer


async def _headset(bed: Bed, agent_id: str, tmp_path: Path) -> SipPeer:
    account = bed.pbx.agents[agent_id]
    peer = SipPeer(name=f"headset-{agent_id}", log_path=tmp_path / f"{agent_id}.log")
    await peer.start()
    await peer.register(account.username, account.password, bed.pbx.sip_host, bed.pbx.sip_port)
    await peer.set_auto_answer(True)
    await eventually(lambda: _reachable(bed, agent_id), 10, f"headset {agent_id} reachable")
    agent = await bed.agent(agent_id)
    if agent["state"] == "logged_out":
        status, body = await bed.api("admin")("POST", f"/api/agents/{agent_id}/login")
        assert status == 200, body
    await bed.wait_agent(agent_id, "available")
    return peer


async def _reachable(bed: Bed, agent_id: str) -> bool:
    return bool((await bed.agent(agent_id))["reachable"])


DIGIT_EVENTS = ("barge_in", "digits", "timeout", "invalid", "digits_discarded")


async def _talk_and_hang_up(bed: Bed, customer: SipPeer, extension: str, agent_id: str,
                            digits: tuple[str, ...] = ()) -> str:
    """Call ``extension`` as the customer, type ``digits`` (one per gather), let ``agent_id``
    answer, hang up; returns the call id."""
    known = await bed.customer_call_ids()
    uri = f"sip:{extension}@{bed.pbx.sip_host}:{bed.pbx.sip_port}"
    peer_call = await customer.call(uri)
    await customer.wait_for("confirmed", 10, call_id=peer_call)
    call_id = await bed.new_call(known)
    for step, typed in zip(("account", "pin"), digits, strict=False):
        await bed.wait_timeline(call_id, "step", step=step)
        await customer.send_dtmf(peer_call, typed)
        await bed.wait_timeline(call_id, "exit", step=step, exit="next")
        heard = [(e["kind"], e["data"]) for e in (await bed.call(call_id))["timeline"]
                 if e["data"].get("step") == step and e["kind"] in DIGIT_EVENTS]
        entered = next(data["digits"] for kind, data in heard if kind == "digits")
        assert entered == (typed if step == "account" else "*" * len(typed)), (
            f"typed {typed!r} at {step}; the daemon's timeline: {heard}")
    await bed.wait_timeline(call_id, "agent_connected", agent_id=agent_id)
    await customer.hangup(peer_call)
    await customer.wait_for("disconnected", 10, call_id=peer_call)
    return call_id


async def _dial_code(bed: Bed, headset: SipPeer, code: str) -> None:
    """Dial a feature code from the headset and wait until the daemon hangs up on it."""
    call = await headset.call(f"sip:{code}@{bed.pbx.sip_host}:{bed.pbx.sip_port}")
    await headset.wait_for("disconnected", 15, call_id=call)


async def test_a_required_disposition_holds_the_agent_until_given_and_lands_on_the_call_and_in_the_history(  # noqa: E501
    bed: Bed, customer: SipPeer, tmp_path: Path,
) -> None:
    a1 = await _headset(bed, "a1", tmp_path)
    a2 = await _headset(bed, "a2", tmp_path)
    try:
        # 1. IVR (account, then a sensitive PIN) -> dq -> a1; held past its wrap-up
        first = await _talk_and_hang_up(bed, customer, "410", "a1", ("1234", "9876"))
        held = await bed.wait_agent("a1", "wrap_up")
        assert held["awaiting_disposition"] is True and held["call_id"] == first
        ends = datetime.fromisoformat(held["since"]) + timedelta(seconds=WRAP_UP + 1.5)
        await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()))
        assert (await bed.agent("a1"))["state"] == "wrap_up"  # the wrap-up time is long over

        status, body = await bed.api("a2")("POST", f"/api/calls/{first}/disposition",
                                           {"code": "1"})
        assert status == 403 and body["error"]["id"] == "forbidden", body
        status, body = await bed.api("a1")("POST", f"/api/calls/{first}/disposition",
                                           {"code": "3"})
        assert status == 400 and body["error"]["id"] == "note_required", body
        status, body = await bed.api("a1")("POST", f"/api/calls/{first}/disposition",
                                           {"code": "9"})
        assert status == 400 and body["error"]["id"] == "invalid_disposition", body
        assert body["error"]["details"]["allowed"] == ["1", "2", "3"]
        await _dial_code(bed, a1, "*482")  # the headset gives code 2
        await bed.wait_agent("a1", "available")
        entry = await bed.wait_timeline(first, "disposition")
        assert entry["data"]["code"] == "2" and entry["data"]["by"] == "agent:a1"

        # 2. dm -> a2, never given: missing after wrap_up_max (2 s)
        second = await _talk_and_hang_up(bed, customer, "411", "a2")
        await bed.wait_agent("a2", "available", timeout=10)
        await bed.wait_timeline(second, "disposition_missing")

        # 3. IVR again -> a1; the agent's own token gives code 3 with its note
        third = await _talk_and_hang_up(bed, customer, "410", "a1", ("5555", "1111"))
        await bed.wait_agent("a1", "wrap_up")
        status, body = await bed.api("a1")("POST", f"/api/calls/{third}/disposition",
                                           {"code": "3", "note": "  sent to second level "})
        assert status == 200, body
        assert (body["code"], body["note"], body["by"]) == ("3", "sent to second level",
                                                            "agent:a1")
        await bed.wait_agent("a1", "available")
        await bed.wait_timeline(third, "disposition", code="3")
        status, body = await bed.api("a1")("POST", f"/api/calls/{third}/disposition",
                                           {"code": "1"})
        assert status == 409 and body["error"]["id"] == "not_in_wrap_up", body
    finally:
        for peer in (a1, a2):
            await peer.close()

    # on the call rows
    rows = {c: await bed.call(c) for c in (first, second, third)}
    assert [(rows[c]["disposition"], rows[c]["disposition_by"]) for c in (first, second, third)
            ] == [("2", "agent:a1"), ("missing", "system"), ("3", "agent:a1")]
    assert rows[third]["disposition_note"] == "sent to second level"
    assert rows[first]["disposition_label"] == "Callback promised"
    assert rows[first]["tags"] == ["record_test", "billing"]

    # the customer history: every form of the number, newest first, paged
    for form in (E164, NATIONAL, "0039 06-1234-5678", "+39 (06) 12345678"):
        status, history = await bed.api("sup")("GET", f"/api/customers/{form}/calls")
        assert status == 200, history
        assert [h["call_id"] for h in history] == [third, second, first], form
    newest, middle, oldest = history
    assert newest["disposition"]["code"] == "3"
    assert newest["disposition"]["note"] == "sent to second level"
    assert newest["inputs"] == {"account": "5555", "pin": "****"}
    assert newest["path"][:3] == ["route", "account", "pin"] and "to_dq" in newest["path"]
    assert (newest["queue"], newest["agent_id"], newest["outcome"]) == ("dq", "a1", "completed")
    assert middle["disposition"]["code"] == "missing" and middle["queue"] == "dm"
    assert oldest["disposition"]["label"] == "Callback promised"
    assert oldest["inputs"] == {"account": "1234", "pin": "****"}
    assert [h["inputs"].get("pin") for h in history] == ["****", None, "****"]
    assert "9876" not in json.dumps([h["inputs"] for h in history])

    async with bed.session.get(f"{bed.daemon.url}/api/customers/{NATIONAL}/calls?limit=2",
                               headers=_auth(bed.tokens["sup"])) as resp:
        page = await resp.json()
        link = resp.links.get("next")
        assert resp.headers["X-Customer-Number"] == E164
    assert [h["call_id"] for h in page] == [third, second] and link is not None
    async with bed.session.get(str(link["url"]) if str(link["url"]).startswith("http")
                               else f"{bed.daemon.url}{link['url']}",
                               headers=_auth(bed.tokens["sup"])) as resp:
        assert [h["call_id"] for h in await resp.json()] == [first]
        assert "Link" not in resp.headers

    # the call filters
    sup = bed.api("sup")
    status, missing = await sup("GET", f"/api/calls?disposition=missing&caller={quote(E164)}")
    assert status == 200 and [c["call_id"] for c in missing] == [second]
    status, by_a1 = await sup("GET", f"/api/calls?agent=a1&queue=dq&caller={NATIONAL}")
    assert [c["call_id"] for c in by_a1] == [third, first]
    for bad in ("outcome=great", "caller=alice", "disposition=x", "from=yesterday", "limt=2"):
        status, body = await sup("GET", f"/api/calls?{bad}")
        assert status == 400 and body["error"]["id"] == "invalid_parameter", (bad, body)
    status, body = await sup("GET", "/api/customers/not-a-number/calls")
    assert status == 400 and body["error"]["id"] == "invalid_number", body


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _plant(bed: Bed, call_id: str, n: int, wav: Path | None, *, link_to: Path | None = None
                 ) -> tuple[str, Path]:
    """A finished recording row for ``call_id`` and its file (a copy of ``wav``, or a symlink
    to ``link_to``), as the recording runtime leaves them."""
    started = datetime.now(UTC)
    relative = relative_path(call_id, n, started)
    path = bed.recordings / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    recording_id = new_id()
    records: list[Any] = [RecordingStarted(recording_id=recording_id, call_id=call_id, n=n,
                                           path=relative, policy="quality", at=started)]
    if link_to is not None:
        path.symlink_to(link_to)
        records.append(RecordingFinished(recording_id=recording_id, status="complete",
                                         duration_s=1.0, size_bytes=1, sha256="0" * 64))
    else:
        assert wav is not None
        shutil.copyfile(wav, path)
        figures = measure(path)
        records.append(RecordingFinished(recording_id=recording_id, status="complete",
                                         duration_s=figures.duration_s,
                                         size_bytes=figures.size_bytes, sha256=figures.sha256))
    engine = create_engine(bed.db_url)
    try:
        await apply_now(engine, records)
        assert await get_recording(engine, recording_id) is not None
    finally:
        await engine.dispose()
    return recording_id, path


async def test_a_recording_is_served_whole_or_by_range_to_the_right_tokens_only(
    bed: Bed, customer: SipPeer, tmp_path: Path,
) -> None:
    a2 = await _headset(bed, "a2", tmp_path)
    try:
        call_id = await _talk_and_hang_up(bed, customer, "411", "a2")
    finally:
        await a2.close()
    wav = audio.make_tone_wav(tmp_path / "tone.wav", 440, 1.0)
    recording_id, path = await _plant(bed, call_id, 1, wav)
    data = path.read_bytes()
    url = f"{bed.daemon.url}/api/recordings/{recording_id}"

    async def get(token: str | None, headers: dict[str, str] | None = None,
                  method: str = "GET", target: str = url) -> tuple[int, dict[str, str], bytes]:
        async with bed.session.request(method, target, headers={**_auth(token),
                                                                **(headers or {})}) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    status, headers, body = await get(bed.tokens["sup"])
    assert status == 200 and body == data and headers["Content-Type"] == "audio/wav"
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, body = await get(bed.tokens["sup"], {"Range": "bytes=100-1099"})
    assert status == 206 and body == data[100:1100]
    assert headers["Content-Range"] == f"bytes 100-1099/{len(data)}"
    status, headers, body = await get(bed.tokens["a2"], {"Range": "bytes=-44"})
    assert status == 206 and body == data[-44:]
    status, headers, body = await get(bed.tokens["sup"], {"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    status, headers, body = await get(bed.tokens["sup"], method="HEAD")
    assert status == 200 and headers["Content-Length"] == str(len(data)) and body == b""
    status, _, body = await get(bed.tokens["a1"])  # a1 never handled this call
    assert status == 403 and json.loads(body)["error"]["id"] == "forbidden"
    status, _, body = await get(None)
    assert status == 401 and json.loads(body)["error"]["id"] == "unauthorized"
    status, _, _ = await get(bed.tokens["sup"], target=f"{bed.daemon.url}/api/recordings/nope")
    assert status == 404

    # path tricks never leave the recordings root
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.wav"
    secret.write_bytes(b"RIFF-not-for-you")
    linked_id, _ = await _plant(bed, call_id, 2, None, link_to=secret)
    for trick in ("..%2F..%2F..%2Fetc%2Fpasswd", "%2E%2E", "..", f"{recording_id}%00",
                  "%2Fetc%2Fpasswd"):
        status, _, body = await get(bed.tokens["sup"],
                                    target=f"{bed.daemon.url}/api/recordings/{trick}")
        assert status in (400, 404), (trick, status)
        assert b"root:" not in body and b"not-for-you" not in body
    status, _, body = await get(bed.tokens["sup"], target=f"{bed.daemon.url}/api/recordings/"
                                                         f"{linked_id}")
    assert status == 404 and json.loads(body)["error"]["id"] == "recording_path_refused"

    # the call lists its recordings; every access is on its timeline
    detail = await bed.call(call_id)
    assert [r["id"] for r in detail["recordings"]] == [recording_id, linked_id]
    status, own = await bed.api("a2")("GET", f"/api/calls/{call_id}")
    assert status == 200 and own["recordings"][0]["url"] == f"/api/recordings/{recording_id}"
    status, _ = await bed.api("a1")("GET", f"/api/calls/{call_id}")
    assert status == 403

    async def accesses() -> list[dict[str, Any]] | None:
        timeline = (await bed.call(call_id))["timeline"]
        found = [e["data"] for e in timeline
                 if e["kind"] in ("recording_accessed", "recording_access_denied")]
        return found if len(found) >= 6 else None

    seen = await eventually(accesses, 10, "the accesses on the timeline")
    assert [(a["by"], a["range"], a["status"]) for a in seen[:6]] == [
        ("supervisor:rec-sup", None, 200), ("supervisor:rec-sup", "bytes=100-1099", 206),
        ("agent:a2", "bytes=-44", 206), ("supervisor:rec-sup", f"bytes={len(data)}-", 416),
        ("supervisor:rec-sup", None, 200), ("agent:a1", None, 403)]


async def test_a_token_revoked_while_the_daemon_runs_is_refused_on_the_next_request(
    bed: Bed,
) -> None:
    code, out = await bed.cli("tokens", "create", "--role", "supervisor", "--name", "late")
    assert code == 0
    late = out.strip()
    async with bed.session.get(f"{bed.daemon.url}/api/queues", headers=_auth(late)) as resp:
        assert resp.status == 200
    code, out = await bed.cli("tokens", "revoke", "late")
    assert code == 0 and "revoked 1" in out
    async with bed.session.get(f"{bed.daemon.url}/api/queues", headers=_auth(late)) as resp:
        assert resp.status == 401
    async with bed.session.get(f"{bed.daemon.url}/api/queues",
                               headers=_auth(bed.tokens["sup"])) as resp:
        assert resp.status == 200


async def test_recordings_check_finds_an_orphan_a_missing_file_and_a_changed_file(
    bed: Bed, tmp_path: Path,
) -> None:
    wav = audio.make_tone_wav(tmp_path / "tone.wav", 1000, 0.5)
    call_id = f"check-{os.getpid()}"
    gone_id, gone = await _plant(bed, call_id, 1, wav)
    changed_id, changed = await _plant(bed, call_id, 2, wav)
    gone.unlink()
    changed.write_bytes(changed.read_bytes()[:-2] + b"\x01\x02")  # same size, other bytes
    orphan = bed.recordings / relative_path(call_id, 3, datetime.now(UTC))
    shutil.copyfile(wav, orphan)

    code, out = await bed.cli("recordings", "check", "--json")
    found = {(f["kind"], f["recording_id"]) for f in json.loads(out)}
    assert code == 1
    assert {("missing_file", gone_id), ("sha256_mismatch", changed_id),
            ("orphan_file", None)} <= found
    assert any(f["path"].endswith(f"{call_id}-3.wav") for f in json.loads(out))
    code, _ = await bed.cli("recordings", "check", "--repair", "--json")
    assert code == 1
    engine = create_engine(bed.db_url)
    try:
        row = await get_recording(engine, gone_id)
        assert row is not None and row.status == "missing"
    finally:
        await engine.dispose()
    code, out = await bed.cli("recordings", "check", "--json")
    assert ("missing_file", gone_id) not in {(f["kind"], f["recording_id"])
                                            for f in json.loads(out)}
    status, body = await bed.api("sup")("GET", f"/api/recordings/{gone_id}")
    assert status == 404 and body["error"]["id"] == "recording_file_missing"


async def test_a_required_disposition_hold_is_kept_across_a_daemon_restart(
    bed: Bed, customer: SipPeer, tmp_path: Path,
) -> None:
    a1 = await _headset(bed, "a1", tmp_path)
    try:
        call_id = await _talk_and_hang_up(bed, customer, "410", "a1", ("2468", "1357"))
        held = await bed.wait_agent("a1", "wrap_up")
        assert held["awaiting_disposition"] is True and held["call_id"] == call_id
        bed.daemon.kill()
        await bed.daemon.wait_exit()
        bed.daemon = DaemonProcess(bed.config_file, bed.daemon.http_port,
                                   bed.config_file.parent / "daemon-restarted.log")
        await bed.daemon.start(40)
        back = await bed.wait_agent("a1", "wrap_up", timeout=10)
        assert (back["state"], back["awaiting_disposition"], back["call_id"]) == (
            "wrap_up", True, call_id), back
        ends = datetime.fromisoformat(held["since"]) + timedelta(seconds=WRAP_UP + 1.0)
        await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()))
        assert (await bed.agent("a1"))["state"] == "wrap_up"  # held past the wrap-up time
        status, body = await bed.api("a1")("POST", f"/api/calls/{call_id}/disposition",
                                           {"code": "1"})
        assert status == 200, body
        await bed.wait_agent("a1", "available")
    finally:
        await a1.close()
    await bed.wait_timeline(call_id, "disposition", code="1")

    async def coded() -> dict[str, Any] | None:
        row = await bed.call(call_id)
        return row if row["disposition"] is not None else None

    row = await eventually(coded, 10, "the disposition on the call row")
    assert (row["disposition"], row["disposition_by"]) == ("1", "agent:a1")
    engine = create_engine(bed.db_url)
    try:
        async with session_factory(engine)() as session:
            rows = (await session.execute(
                sa.select(AgentEventRow).where(col(AgentEventRow.agent_id) == "a1")
                .order_by(col(AgentEventRow.id)))).scalars().all()
    finally:
        await engine.dispose()
    moves = [(r.data["from"], r.data["to"], r.data["reason"]) for r in rows]
    restored = moves.index(("logged_out", "wrap_up", "restored"))
    assert moves[restored + 1] == ("wrap_up", "available", "disposition_given"), moves
