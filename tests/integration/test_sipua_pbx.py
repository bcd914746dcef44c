"""The SIP test peers, the dial tool and the sipp runner against the real test Asterisk.

No Stasis app is connected here, so a call to the hotline gets the dialplan fallback: Asterisk
answers, plays the fallback prompt and 'goodbye', then hangs up.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from callcontrol import audio
from callcontrol.sipua.client import SipPeer, SipPeerError
from callcontrol.sipua.dial import add_dial_arguments, run_dial
from callcontrol_testing.sipp import run_sipp
from callcontrol_testing.testbed import PbxTestbed

CALLER_TONE = 440
SILENCE_RMS = 0.01  # recordings of the fallback prompt measure about 0.1


async def _contacts(pbx: PbxTestbed) -> str:
    return await pbx.instance.cli("pjsip show contacts")


async def _wait_contacts(pbx: PbxTestbed, needle: str, present: bool, seconds: float) -> str:
    """Poll ``pjsip show contacts`` until ``needle`` is (or is no longer) listed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        listing = await _contacts(pbx)
        if (needle in listing) == present or loop.time() > deadline:
            return listing
        await asyncio.sleep(0.1)


async def test_agent_headset_registers_and_unregisters_on_close(pbx: PbxTestbed) -> None:
    account = pbx.agents["a1"]
    async with SipPeer(name="agent") as agent:
        event = await agent.register(account.username, account.password, pbx.sip_host, pbx.sip_port)
        assert event["code"] == 200
        contact = f"{account.username}@127.0.0.1:{agent.sip_port}"
        assert contact in await _wait_contacts(pbx, contact, True, 5)
    assert contact not in await _wait_contacts(pbx, contact, False, 5)


async def test_registration_with_a_wrong_password_is_refused(pbx: PbxTestbed) -> None:
    account = pbx.agents["a2"]
    async with SipPeer(name="intruder") as peer:
        with pytest.raises(SipPeerError, match=r"registration of .* failed: 401"):
            await peer.register(account.username, "wrong-password", pbx.sip_host, pbx.sip_port)


async def test_caller_to_hotline_hears_the_fallback_until_asterisk_hangs_up(
    pbx: PbxTestbed, tmp_path: Path
) -> None:
    tone = audio.make_tone_wav(tmp_path / "caller.wav", CALLER_TONE, 1.0)
    heard = tmp_path / "heard.wav"
    async with SipPeer(name="caller") as caller:
        await caller.use_account(
            pbx.caller.username, pbx.caller.password, pbx.sip_host, pbx.sip_port
        )
        call = await caller.call(
            f"sip:100@{pbx.sip_host}:{pbx.sip_port}", play_wav=tone, record_wav=heard
        )
        await caller.wait_for("confirmed", 10, call_id=call)
        ended = await caller.wait_for("disconnected", 40, call_id=call)
    assert ended["recording"] == str(heard)
    assert ended["connect_seconds"] > 2.0
    assert audio.duration(heard) > 2.0
    assert audio.rms(heard) > SILENCE_RMS
    # Asterisk plays a prompt to the caller: it does not echo the caller's own tone back.
    assert not audio.has_tone(heard, CALLER_TONE)


async def test_dial_tool_reports_an_answered_call_with_sound(
    pbx: PbxTestbed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "local.env"
    env_file.write_text(
        "# as make run writes it\n"
        f"SIP_HOST={pbx.sip_host}\nSIP_PORT={pbx.sip_port}\n"
        f"DEMO_CALLER_USER={pbx.caller.username}\n"
        f'DEMO_CALLER_PASSWORD="{pbx.caller.password}"\n'
    )
    parser = argparse.ArgumentParser()
    add_dial_arguments(parser)
    record = tmp_path / "dial.wav"
    args = parser.parse_args(
        [
            "100",
            *("--digits", "1", "--digit-pause", "0.5", "--hangup-after", "3"),
            *("--record", str(record), "--env-file", str(env_file)),
        ]
    )
    assert await run_dial(args, {}) == 0
    out = capsys.readouterr().out
    assert "answered after" in out
    assert "sent digits 1" in out
    assert "heard sound" in out
    assert audio.rms(record) > SILENCE_RMS
    assert pbx.caller.password not in out

    refused = parser.parse_args(["100", "--env-file", str(env_file)])
    assert await run_dial(refused, {"DEMO_CALLER_PASSWORD": "wrong"}) == 1
    assert "not answered: 401" in capsys.readouterr().out


async def test_sipp_caller_with_digest_auth_audio_and_a_digit(
    pbx: PbxTestbed, tmp_path: Path
) -> None:
    result = await run_sipp(
        pbx.sip_host,
        pbx.sip_port,
        user=pbx.caller.username,
        password=pbx.caller.password,
        workdir=tmp_path / "sipp",
        calls=2,
        rate=2.0,
        call_ms=500,
    )
    assert result.ok, f"{result.meaning}: {result.errors}"
    assert (result.stats.created, result.stats.successful, result.stats.failed) == (2, 2, 0)
    assert result.stats.response_time_ms is not None


async def test_sipp_with_a_wrong_password_fails_its_calls(pbx: PbxTestbed, tmp_path: Path) -> None:
    result = await run_sipp(
        pbx.sip_host,
        pbx.sip_port,
        user=pbx.caller.username,
        password="wrong",
        workdir=tmp_path / "sipp",
        call_ms=100,
        recv_timeout_ms=2000,
    )
    assert not result.ok
    assert result.stats.failed == 1
