"""The ARI client and adapter against the session's real Asterisk 22."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from callcontrol import telephony as tel
from callcontrol.ari import protocol as ari
from callcontrol.ari.adapter import AriTelephony, translate
from callcontrol.ari.client import AriClient
from callcontrol.errors import NotFound
from callcontrol_testing.testbed import PbxTestbed

pytestmark = pytest.mark.integration


@dataclass
class Live:
    client: AriClient
    telephony: AriTelephony
    events: asyncio.Queue[tel.TelephonyEvent] = field(default_factory=asyncio.Queue)
    connects: asyncio.Queue[int] = field(default_factory=asyncio.Queue)

    async def expect(self, kind: type[tel.TelephonyEvent], channel_id: str,
                     limit: float = 10.0) -> tel.TelephonyEvent:
        """The next event of ``kind`` for ``channel_id`` (others are skipped)."""
        async with asyncio.timeout(limit):
            while True:
                event = await self.events.get()
                if isinstance(event, kind) and event.channel_id == channel_id:
                    return event


@pytest.fixture
async def live(pbx: PbxTestbed) -> AsyncIterator[Live]:
    client = AriClient(pbx.ari_url, pbx.ari_user, pbx.ari_password, pbx.app,
                       request_timeout=5.0, reconnect_max_delay=2.0)
    state = Live(client, AriTelephony(client))

    async def on_event(event: ari.AriEvent) -> None:
        for domain_event in translate(event):
            await state.events.put(domain_event)

    async def on_connected() -> None:
        await state.connects.put(client.link.reconnects)

    client.on_event(on_event)
    client.on_connected(on_connected)
    await client.start()
    try:
        async with asyncio.timeout(10):
            await client.wait_connected()
        yield state
    finally:
        await client.close()


async def test_info_and_our_app_is_registered(live: Live) -> None:
    info = await live.client.request(ari.asterisk_info())
    assert info["system"]["version"].startswith("22.")
    apps = await live.client.request(ari.list_applications())
    assert live.client.app in {a["name"] for a in apps}
    assert live.client.link.up and live.client.link.last_up is not None


async def test_a_call_through_the_dialplan_enters_plays_bridges_and_ends(live: Live) -> None:
    caller_leg = f"t-local2-{uuid.uuid4().hex[:8]}"  # runs 100@callcontrol-inbound
    app_leg = f"t-local1-{uuid.uuid4().hex[:8]}"  # enters the app directly once answered
    await live.client.request(ari.Request(
        "POST", "/channels",
        {"endpoint": "Local/100@callcontrol-inbound", "app": live.client.app,
         "appArgs": "test-originate", "channelId": app_leg, "otherChannelId": caller_leg},
    ))
    t = live.telephony
    try:
        entered = await live.expect(tel.ChannelEntered, caller_leg)
        assert isinstance(entered, tel.ChannelEntered)
        assert entered.args[:1] == ("inbound",) and entered.extension == "100"
        assert entered.sip_call_id is None  # a Local channel has no SIP Call-ID
        assert entered.at.tzinfo is not None

        await t.answer(caller_leg)
        app_entered = await live.expect(tel.ChannelEntered, app_leg)
        assert isinstance(app_entered, tel.ChannelEntered)
        assert app_entered.args == ("test-originate",)

        listed = {c.channel_id: c for c in await t.list_channels()}
        assert {caller_leg, app_leg} <= set(listed)
        assert listed[caller_leg].state == "Up" and listed[caller_leg].extension == "100"

        await t.play(caller_leg, ["sound:beep"], f"pb-{caller_leg}")
        started = await live.expect(tel.PlaybackStarted, caller_leg)
        assert isinstance(started, tel.PlaybackStarted)
        assert started.playback_id == f"pb-{caller_leg}"
        finished = await live.expect(tel.PlaybackFinished, caller_leg)
        assert isinstance(finished, tel.PlaybackFinished) and finished.state == "done"
        await t.stop_playback(f"pb-{caller_leg}")  # already gone: not an error

        assert await t.get_variable(caller_leg, "NO_SUCH_VARIABLE_HERE") is None
        await t.ring(app_leg)

        bridge = f"t-bridge-{uuid.uuid4().hex[:8]}"
        await t.create_bridge(bridge)
        await t.add_to_bridge(bridge, caller_leg)  # returns once the channel is in
        bridges = {b.bridge_id: b for b in await t.list_bridges()}
        assert bridges[bridge].channel_ids == (caller_leg,)
        listed = {c.channel_id: c for c in await t.list_channels()}
        assert listed[caller_leg].bridge_ids == (bridge,)
        await t.remove_from_bridge(bridge, caller_leg)
        await t.destroy_bridge(bridge)
        await t.destroy_bridge(bridge)  # gone: not an error
    finally:
        for leg in (caller_leg, app_leg):
            # The other leg's hangup may already have taken this one down.
            with contextlib.suppress(NotFound):
                await t.hangup(leg)
    hung = await live.expect(tel.ChannelHungUp, caller_leg)
    assert isinstance(hung, tel.ChannelHungUp) and hung.cause >= 0
    await live.expect(tel.ChannelLeftApp, app_leg)


async def test_restart_reconnects_within_five_seconds(live: Live, pbx: PbxTestbed) -> None:
    client = live.client
    assert await live.connects.get() == 0
    before = client.link.reconnects
    await pbx.instance.restart()
    back_at = time.monotonic()
    async with asyncio.timeout(5):
        assert await live.connects.get() == before + 1
    assert time.monotonic() - back_at < 5.0
    link = client.link
    assert link.up and link.reconnects == before + 1
    assert link.last_down is not None and link.last_up is not None
    assert link.last_down < link.last_up
    info = await client.request(ari.asterisk_info())
    assert info["system"]["version"].startswith("22.")


async def test_created_channel_is_dialed_and_its_dial_ends(live: Live) -> None:
    t = live.telephony
    leg = f"t-created-{uuid.uuid4().hex[:8]}"
    await t.create_channel("Local/100@callcontrol-inbound", leg, ["agent", "a1"],
                           caller_id='"Hotline" <555>')
    try:
        entered = await live.expect(tel.ChannelEntered, leg)
        assert isinstance(entered, tel.ChannelEntered) and entered.args == ("agent", "a1")
        await t.dial(leg, 10)
        async with asyncio.timeout(10):
            while True:  # the far half of the Local channel arrives through the dialplan
                far = await live.events.get()
                if isinstance(far, tel.ChannelEntered) and far.args[:1] == ("inbound",):
                    break
        assert far.caller_number == "555"
        await t.answer(far.channel_id)
        ended = await live.expect(tel.DialEnded, leg)
        assert isinstance(ended, tel.DialEnded) and ended.status == "ANSWER"
        await t.hangup(far.channel_id)
    finally:
        with contextlib.suppress(NotFound):
            await t.hangup(leg)
    await live.expect(tel.ChannelLeftApp, leg)
