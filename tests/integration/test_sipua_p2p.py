"""Two real pjsua2 peers calling each other directly (no Asterisk): media, DTMF, failures."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcontrol import audio
from callcontrol.sipua.client import SipPeer, SipPeerCrashed, SipPeerError, SipPeerTimeout

CALLER_TONE, AGENT_TONE = 440, 1000
TALK_SECONDS = 2.0  # audio flows this long before the checks; the waits are all on events


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[SipPeer, SipPeer]]:
    """Peer ``a`` calls peer ``b`` at b's own port; both use digest-less direct SIP."""
    async with SipPeer(name="a") as a, SipPeer(name="b") as b:
        await a.use_account("a", "unused", "127.0.0.1", b.sip_port)
        await b.use_account("b", "unused", "127.0.0.1", a.sip_port)
        yield a, b


async def test_each_side_hears_the_other_tone_and_dtmf_arrives(
    pair: tuple[SipPeer, SipPeer], tmp_path: Path
) -> None:
    a, b = pair
    caller_wav = audio.make_tone_wav(tmp_path / "caller-tone.wav", CALLER_TONE, 1.0)
    agent_wav = audio.make_tone_wav(tmp_path / "agent-tone.wav", AGENT_TONE, 1.0)
    await b.set_auto_answer(True, play_wav=agent_wav, record_wav=tmp_path / "b-{call_id}.wav")
    call = await a.call(
        f"sip:b@127.0.0.1:{b.sip_port}", play_wav=caller_wav, record_wav=tmp_path / "a.wav"
    )
    incoming = await b.wait_for("incoming")
    await a.wait_for("confirmed", call_id=call)
    await a.wait_for("media", call_id=call)
    await b.wait_for("media", call_id=incoming["call_id"])
    await asyncio.sleep(TALK_SECONDS)

    await a.send_dtmf(call, "12#")
    digits = [(await b.wait_for("dtmf", call_id=incoming["call_id"]))["digit"] for _ in range(3)]
    assert digits == ["1", "2", "#"]

    await a.hangup(call)
    mine = await a.wait_for("disconnected", call_id=call)
    theirs = await b.wait_for("disconnected", call_id=incoming["call_id"])
    assert theirs["recording"] == str(tmp_path / f"b-{incoming['call_id']}.wav")
    heard_by_a, heard_by_b = Path(mine["recording"]), Path(theirs["recording"])
    assert audio.duration(heard_by_a) >= TALK_SECONDS
    assert audio.has_tone(heard_by_a, AGENT_TONE)
    assert not audio.has_tone(heard_by_a, CALLER_TONE)
    assert audio.has_tone(heard_by_b, CALLER_TONE)
    assert not audio.has_tone(heard_by_b, AGENT_TONE)


async def test_ringing_call_can_be_rejected(pair: tuple[SipPeer, SipPeer]) -> None:
    a, b = pair
    call = await a.call(f"sip:b@127.0.0.1:{b.sip_port}")
    incoming = await b.wait_for("incoming")
    await a.wait_for("early", call_id=call)
    await b.hangup(incoming["call_id"], code=486)
    ended = await a.wait_for("disconnected", call_id=call)
    assert ended["code"] == 486
    assert ended["recording"] is None
    assert not a.events("confirmed")


async def test_manual_answer(pair: tuple[SipPeer, SipPeer], tmp_path: Path) -> None:
    a, b = pair
    call = await a.call(f"sip:b@127.0.0.1:{b.sip_port}")
    incoming = await b.wait_for("incoming")
    await b.answer(incoming["call_id"], record_wav=tmp_path / "b.wav")
    await a.wait_for("confirmed", call_id=call)
    await b.hangup(incoming["call_id"])
    assert (await a.wait_for("disconnected", call_id=call))["code"] == 200
    assert (await b.wait_for("disconnected"))["recording"] == str(tmp_path / "b.wav")


async def test_refused_command_and_timeout_are_clear_errors(pair: tuple[SipPeer, SipPeer]) -> None:
    a, _ = pair
    with pytest.raises(SipPeerError, match="no call 'nope'"):
        await a.hangup("nope")
    with pytest.raises(SipPeerError, match="Invalid Request URI"):
        await a.call("not a uri")
    with pytest.raises(SipPeerTimeout, match="no confirmed event"):
        await a.wait_for("confirmed", 0.2)


async def test_crashed_peer_fails_waits_and_commands_at_once() -> None:
    async with SipPeer(name="doomed") as peer:
        waiting = asyncio.create_task(peer.wait_for("incoming", 30))
        os.kill(peer.pid, signal.SIGKILL)
        with pytest.raises(SipPeerCrashed, match=r"doomed .* exited with code -9"):
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(SipPeerCrashed):
            await peer.set_auto_answer(True)


async def test_a_peer_dying_of_a_signal_is_reported_with_its_native_stacks() -> None:
    """pjsua2 crashes in C threads Python cannot show: the report carries gdb's stacks read
    from the child's core file, and the core file does not outlive the peer."""
    peer = SipPeer(name="segv")
    await peer.start()
    workdir = peer._workdir
    assert workdir is not None
    try:
        os.kill(peer.pid, signal.SIGSEGV)
        with pytest.raises(SipPeerCrashed) as crashed:
            await peer.wait_for("incoming", 10)
    finally:
        await peer.close()  # returns once the stacks were read
    report = str(crashed.value)
    assert "exited with code -11" in report
    assert "native stacks:" in report
    assert "_pjsua2" in report, report[-3000:]  # frames inside pjsua2's C library
    assert not workdir.exists()
