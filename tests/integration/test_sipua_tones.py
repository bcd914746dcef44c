"""Tones per party, end to end through Asterisk: caller (440 Hz) and agent (1 kHz) peers are
bridged by a minimal Stasis app driven from the test over raw ARI, and each recording must
hold the other party's tone and not its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from callcontrol import audio
from callcontrol.sipua.client import SipPeer
from callcontrol_testing.testbed import PbxTestbed

CALLER_TONE, AGENT_TONE, SUPERVISOR_TONE = 440, 1000, 2000
TALK_SECONDS = 2.0  # audio flows this long once both legs are bridged


class MiniAri:
    """Just enough ARI for this test: REST calls and the app's event stream."""

    def __init__(self, pbx: PbxTestbed, http: aiohttp.ClientSession) -> None:
        self.pbx = pbx
        self.http = http
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def post(self, path: str, **params: str) -> Any:
        async with self.http.post(f"{self.pbx.ari_url}/ari{path}", params=params) as resp:
            assert resp.status < 300, f"POST {path}: {resp.status} {await resp.text()}"
            return await resp.json() if resp.content_type == "application/json" else None

    async def delete(self, path: str) -> None:
        async with self.http.delete(f"{self.pbx.ari_url}/ari{path}") as resp:
            assert resp.status < 300 or resp.status == 404, f"DELETE {path}: {resp.status}"

    async def stasis_start(self, seconds: float = 10.0) -> dict[str, Any]:
        """The next StasisStart event's channel."""
        async with asyncio.timeout(seconds):
            while True:
                event = await self.events.get()
                if event["type"] == "StasisStart":
                    channel: dict[str, Any] = event["channel"]
                    return channel


@pytest.fixture
async def ari(pbx: PbxTestbed) -> AsyncIterator[MiniAri]:
    headers = {"Authorization": aiohttp.encode_basic_auth(pbx.ari_user, pbx.ari_password)}
    async with aiohttp.ClientSession(headers=headers) as http:
        client = MiniAri(pbx, http)
        url = f"{pbx.ari_url.replace('http', 'ws', 1)}/ari/events"
        async with http.ws_connect(url, params={"app": pbx.app}) as ws:

            async def pump() -> None:
                async for message in ws:
                    client.events.put_nowait(json.loads(message.data))

            reader = asyncio.create_task(pump())
            try:
                yield client
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


async def test_each_party_hears_only_the_other_tone(
    pbx: PbxTestbed, ari: MiniAri, tmp_path: Path
) -> None:
    caller_tone = audio.make_tone_wav(tmp_path / "caller-tone.wav", CALLER_TONE, 1.0)
    agent_tone = audio.make_tone_wav(tmp_path / "agent-tone.wav", AGENT_TONE, 1.0)
    account = pbx.agents["a1"]
    async with SipPeer(name="agent") as agent, SipPeer(name="caller") as caller:
        await agent.register(account.username, account.password, pbx.sip_host, pbx.sip_port)
        await agent.set_auto_answer(True, play_wav=agent_tone, record_wav=tmp_path / "agent.wav")
        await caller.use_account(
            pbx.caller.username, pbx.caller.password, pbx.sip_host, pbx.sip_port
        )
        call = await caller.call(
            f"sip:100@{pbx.sip_host}:{pbx.sip_port}",
            play_wav=caller_tone,
            record_wav=tmp_path / "caller.wav",
        )
        inbound = await ari.stasis_start()
        bridge = await ari.post("/bridges", type="mixing")
        try:
            await ari.post(f"/channels/{inbound['id']}/answer")
            await ari.post(f"/bridges/{bridge['id']}/addChannel", channel=inbound["id"])
            await ari.post(
                "/channels", endpoint=f"PJSIP/{account.username}", app=pbx.app, appArgs="agent"
            )
            outbound = await ari.stasis_start()
            await ari.post(f"/bridges/{bridge['id']}/addChannel", channel=outbound["id"])
            await caller.wait_for("media", call_id=call)
            await agent.wait_for("media")
            await asyncio.sleep(TALK_SECONDS)
            await caller.hangup(call)
            heard_by_caller = Path(
                (await caller.wait_for("disconnected", call_id=call))["recording"]
            )
            await ari.delete(f"/channels/{outbound['id']}")
            heard_by_agent = Path((await agent.wait_for("disconnected", 10))["recording"])
        finally:
            await ari.delete(f"/bridges/{bridge['id']}")

    assert audio.has_tone(heard_by_caller, AGENT_TONE)
    assert not audio.has_tone(heard_by_caller, CALLER_TONE)
    assert audio.has_tone(heard_by_agent, CALLER_TONE)
    assert not audio.has_tone(heard_by_agent, AGENT_TONE)
    for heard in (heard_by_caller, heard_by_agent):
        assert not audio.has_tone(heard, SUPERVISOR_TONE)
