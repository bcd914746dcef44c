"""A restarted daemon adopts the queue calls a SIGKILLed one left (DECISIONS.md, "Restart and
adopt"), on real Asterisk with pjsua2 callers and headsets (the ACD test bed, acd_bed.py).

The daemon is SIGKILLed mid-call and started again on the same config, journal and store (as
the supervisor of ``make run`` does); Asterisk keeps the bridges and the channels in Stasis
meanwhile. What proves the adoption: audio flows both ways after the restart (each party's tone
in the other's recording, cut to the part after the new daemon logged ``recovered``), the
callers reach agents in their original order, and every row closes once with its real outcome.
"""

from __future__ import annotations

import asyncio
import os
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from acd_bed import AGENT_HZ, CALLER_HZ, EXTENSIONS, AcdBed, Row, eventually, running_bed

from callcontrol import audio
from callcontrol.sipua.client import SipPeer
from callcontrol.store.tables import CallRow

pytestmark = [pytest.mark.integration, pytest.mark.postgres,
              pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bed(tmp_path_factory: pytest.TempPathFactory, module_db_url: str
              ) -> AsyncIterator[AcdBed]:
    async with running_bed(tmp_path_factory.mktemp("adopt"), f"adopt-{os.getpid()}",
                           module_db_url) as running:
        yield running


def segment(path: str | Path, start: float, end: float, target: Path) -> Path:
    """The part ``[start, end)`` seconds of a recording, as a WAV of its own."""
    samples, rate = audio.read_samples(path)
    part = samples[max(0, int(start * rate)): int(end * rate)]
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"".join(int(v * 32767).to_bytes(2, "little", signed=True)
                                 for v in part))
    return target


async def call_of(bed: AcdBed, sip_call_id: str) -> dict[str, Any]:
    """The one call row of a SIP Call-ID (waits until it exists)."""

    async def check() -> list[CallRow] | None:
        return await bed.call_rows(sip_call_id=sip_call_id) or None

    rows: list[CallRow] = await eventually(check, 10, f"row of {sip_call_id}")
    assert len(rows) == 1, rows
    (row,) = rows
    return {"call_id": row.call_id, "outcome": row.outcome, "ended": row.ended_at is not None,
            "agent_id": row.agent_id}


async def wait_event(bed: AcdBed, call_id: str, kind: str, count: int = 1,
                     timeout: float = 20.0) -> list[Row]:
    """Wait until the call's timeline has ``count`` events of ``kind``; return them."""

    async def check() -> list[Row] | None:
        rows = [r for r in await bed.timeline(call_id) if r.kind == kind]
        return rows if len(rows) >= count else None

    result: list[Row] = await eventually(check, timeout, f"{count} {kind} of {call_id}")
    return result


async def closed_once(bed: AcdBed, call_id: str) -> dict[str, Any]:
    """Wait until the row is closed; check its timeline ends once; return the row."""

    async def check() -> str | None:
        rows = await bed.call_rows(call_id=call_id)
        return rows[0].outcome if rows and rows[0].ended_at is not None else None

    outcome = await eventually(check, 20, f"row of {call_id} closed")
    kinds = [r.kind for r in await bed.timeline(call_id)]
    assert kinds.count("call_ended") == 1, kinds
    assert kinds.count("recovered") == 1, kinds
    return {"outcome": outcome, "kinds": kinds}


async def kill_and_restart(bed: AcdBed) -> float:
    """SIGKILL the daemon and start it again on the same config; returns the loop time of
    the kill."""
    loop = asyncio.get_running_loop()
    bed.daemon.kill()
    killed_at = loop.time()
    await bed.daemon.wait_exit()
    await bed.daemon.start(60)
    return killed_at


async def place(bed: AcdBed, peer: SipPeer, key: str, record: Path | None = None
                ) -> tuple[str, str, float]:
    """Call a scenario's extension; returns the peer's call id, its SIP Call-ID and the loop
    time its media (and recording) started."""
    call = await peer.call(bed.uri(EXTENSIONS[key]), play_wav=bed.caller_wav, record_wav=record)
    confirmed = await peer.wait_for("confirmed", 10, call_id=call)
    await peer.wait_for("media", 10, call_id=call)
    return call, str(confirmed["sip_call_id"]), asyncio.get_running_loop().time()


async def test_bridged_call_survives_a_daemon_sigkill_and_ends_normally(
    bed: AcdBed, tmp_path: Path,
) -> None:
    loop = asyncio.get_running_loop()
    await bed.set_state("b2", "logged_out")
    async with bed.headset("b1") as b1, bed.caller() as caller:
        await bed.set_state("b1", "available")
        heard = tmp_path / "caller.wav"
        call, sip_call_id, caller_media = await place(bed, caller, "li", heard)
        incoming = await b1.wait_for("incoming", 10)
        await b1.wait_for("confirmed", 10, call_id=incoming["call_id"])
        agent_media = loop.time()
        row = await call_of(bed, sip_call_id)
        await wait_event(bed, row["call_id"], "agent_connected")

        await kill_and_restart(bed)
        recovered = (await wait_event(bed, row["call_id"], "recovered"))[0]
        adopted_at = loop.time()
        assert recovered.data["adopted"] == "bridged", recovered.data
        assert recovered.data["agent_id"] == "b1"
        agent = await bed.agent("b1")
        assert agent["state"] == "on_call" and agent["call_id"] == row["call_id"], agent
        await asyncio.sleep(3.0)  # three seconds of conversation after the restart
        talk_end = loop.time()

        await b1.hangup(incoming["call_id"])  # the agent hangs up first
        agent_end = await b1.wait_for("disconnected", 10, call_id=incoming["call_id"])
        ended = await caller.wait_for("disconnected", 15, call_id=call)  # after a goodbye

    after = segment(ended["recording"], adopted_at - caller_media + 0.5,
                    talk_end - caller_media, tmp_path / "caller-after.wav")
    assert audio.has_tone(after, AGENT_HZ, min_seconds=1.5), "caller lost the agent"
    agent_after = segment(agent_end["recording"], adopted_at - agent_media + 0.5,
                          talk_end - agent_media, tmp_path / "agent-after.wav")
    assert audio.has_tone(agent_after, CALLER_HZ, min_seconds=1.5), "agent lost the caller"

    closed = await closed_once(bed, row["call_id"])
    assert closed["outcome"] == "completed"
    assert "goodbye" in closed["kinds"]
    disconnected = [r for r in await bed.timeline(row["call_id"])
                    if r.kind == "agent_disconnected"]
    assert len(disconnected) == 1 and disconnected[0].data["by"] == "agent"
    assert disconnected[0].data["talk_s"] >= 3.0
    wrap = await bed.wait_state("b1", "wrap_up", "available")
    states = [(r.data["from"], r.data["to"]) for r in await bed.agent_states("b1")]
    assert ("on_call", "wrap_up") in states, (wrap, states)
    assert not [b for b in await bed.bridges() if b["id"] == f"{row['call_id']}-queue"]


async def test_waiting_callers_keep_their_order_across_a_daemon_sigkill(bed: AcdBed) -> None:
    loop = asyncio.get_running_loop()
    await bed.set_state("n2", "logged_out")
    await bed.set_state("n1", "paused")  # the queue is staffed, nobody is free
    async with bed.caller() as first, bed.caller() as second:
        call_1, sip_1, _ = await place(bed, first, "rna")
        row_1 = await call_of(bed, sip_1)
        await wait_event(bed, row_1["call_id"], "queue_entered")
        call_2, sip_2, _ = await place(bed, second, "rna")
        row_2 = await call_of(bed, sip_2)
        await wait_event(bed, row_2["call_id"], "queue_entered")

        killed_at = await kill_and_restart(bed)
        for row in (row_2, row_1):
            recovered = (await wait_event(bed, row["call_id"], "recovered"))[0]
            assert recovered.data["adopted"] == "waiting", recovered.data
        assert (await bed.agent("n1"))["state"] == "paused"  # restored
        assert not first.events("disconnected") and not second.events("disconnected")

        async with bed.headset("n2") as n2:
            await bed.action("n2", "login")  # an agent logs in: the first caller gets it
            incoming = await n2.wait_for("incoming", 15)
            await n2.wait_for("confirmed", 10, call_id=incoming["call_id"])
            connected = await wait_event(bed, row_1["call_id"], "agent_connected")
            assert connected[0].data["wait_s"] >= loop.time() - killed_at  # from the entry
            await first.hangup(call_1)
            await first.wait_for("disconnected", 10, call_id=call_1)
            await n2.wait_for("disconnected", 10, call_id=incoming["call_id"])
            second_leg = await n2.wait_for("incoming", 15)  # the next one
            await n2.wait_for("confirmed", 10, call_id=second_leg["call_id"])
            await wait_event(bed, row_2["call_id"], "agent_connected")
            await second.hangup(call_2)
            await second.wait_for("disconnected", 10, call_id=call_2)

    connections = await bed.call_events("agent_connected", "rna")
    order = [r.owner for r in connections if r.owner in (row_1["call_id"], row_2["call_id"])]
    assert order == [row_1["call_id"], row_2["call_id"]]
    for row in (row_1, row_2):
        closed = await closed_once(bed, row["call_id"])
        assert closed["outcome"] == "completed", closed
        entered = [r for r in await bed.timeline(row["call_id"]) if r.kind == "queue_entered"]
        assert len(entered) == 1  # readmitted at its place, not entered twice
    await bed.set_state("n1", "logged_out")
