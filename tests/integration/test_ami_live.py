"""The AMI wrapper against the session's real Asterisk 22."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from callcontrol.ami import protocol as ami
from callcontrol.ami.client import AmiClient
from callcontrol.errors import PbxRefused
from callcontrol_testing.testbed import PbxTestbed

pytestmark = pytest.mark.integration


Connected = tuple[AmiClient, asyncio.Queue[ami.AmiEvent]]


@pytest.fixture
async def ami_client(pbx: PbxTestbed) -> AsyncIterator[Connected]:
    client = AmiClient(pbx.sip_host, pbx.ami_port, pbx.ami_user, pbx.ami_password,
                       action_timeout=1.0, ping_interval=0.5)
    events: asyncio.Queue[ami.AmiEvent] = asyncio.Queue()
    client.subscribe(events.put)
    await client.start()
    try:
        async with asyncio.timeout(10):
            await client.wait_connected()
        yield client, events
    finally:
        await client.close()


async def test_connects_sees_fully_booted_and_answers(
    ami_client: Connected, pbx: PbxTestbed
) -> None:
    client, events = ami_client
    async with asyncio.timeout(5):
        while not isinstance(await events.get(), ami.FullyBooted):
            pass
    await client.ping()
    agent = next(iter(pbx.agents.values())).username
    # An agent headset that has not registered: no contact, device unavailable.
    assert agent not in await client.contact_status()
    assert await client.device_state(f"PJSIP/{agent}") == "UNAVAILABLE"
    with pytest.raises(PbxRefused):
        await client.action({"Action": "NoSuchAction"})
    assert client.link.up and client.link.reconnects == 0


async def test_watchdog_notices_a_frozen_asterisk(
    ami_client: Connected, pbx: PbxTestbed
) -> None:
    client, _ = ami_client
    pid = pbx.instance.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the socket stays open, nothing answers
    try:
        async with asyncio.timeout(10):
            await client.wait_disconnected()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert client.link.last_error is not None and "watchdog" in client.link.last_error
    async with asyncio.timeout(10):
        await client.wait_connected()
    await client.ping()
    assert client.link.reconnects == 1
