"""The flow's ``dial`` step over the fake switch: ring, bridge on answer, clean up."""

from __future__ import annotations

import asyncio
from typing import Any

from callcontrol.calls.context import DialRequest
from callcontrol.calls.dial import DialStep
from callcontrol.config import Config
from callcontrol.fake_telephony import FakeTelephony
from callcontrol.telephony import ChannelHungUp
from callcontrol_testing.fake_call import FakeCall, FakeSwitch


class NoAgents:
    """The ACD side of the step, never asked for an ``endpoint:`` target."""

    def dial_endpoint(self, agent_id: str) -> str:
        raise AssertionError(f"no agent is dialed here ({agent_id})")

    def ringing(self, agent_id: str, call_id: str) -> None:
        raise AssertionError("no agent rings here")

    def connected(self, agent_id: str) -> None:
        raise AssertionError("no agent connects here")

    def released(self, agent_id: str) -> None:
        raise AssertionError("no agent is released here")


def _config() -> Config:
    return Config.model_validate(
        {"asterisk": {"ari": {"password": {"env": "X"}}, "ami": {"password": {"env": "X"}}}})


async def test_an_answered_dial_bridges_both_channels_in_one_request() -> None:
    telephony = FakeTelephony()
    switch = FakeSwitch(telephony)
    call = switch.add(FakeCall(telephony, "c1"))
    bridged = asyncio.Event()
    switch_hook = telephony.on_command
    assert switch_hook is not None

    def on_command(name: str, args: dict[str, Any]) -> None:
        switch_hook(name, args)
        if name == "add_to_bridge":
            bridged.set()

    telephony.on_command = on_command
    step = asyncio.create_task(DialStep(NoAgents(), _config())(
        call, DialRequest(to="endpoint:desk-7", timeout=5)))
    await asyncio.wait_for(bridged.wait(), 3)
    leg = switch.dialed("PJSIP/desk-7")[0]
    bridge = next(iter(telephony.bridges))
    assert [a for n, a in telephony.commands if n == "add_to_bridge"] == [
        {"bridge_id": bridge, "channel_ids": ["c1-caller", leg]}]
    switch.post(ChannelHungUp(channel_id=leg))
    assert await asyncio.wait_for(step, 2) == "next"
    assert telephony.names()[-1] == "destroy_bridge" and telephony.bridges == {}
