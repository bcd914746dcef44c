"""AmiClient against a local stand-in manager: guarded subscribers, timeouts, the watchdog,
and an Originate pending at a disconnect that must not be placed twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from callcontrol.ami import protocol as ami
from callcontrol.ami.client import AmiClient
from callcontrol.errors import PbxRefused, PbxUnreachable

EOL = "\r\n"


def frame(**headers: str) -> bytes:
    return ("".join(f"{k}: {v}{EOL}" for k, v in headers.items()) + EOL).encode()


@dataclass
class StandInAmi:
    """Speaks just enough AMI: Login, Ping (unless muted), Getvar; records every action."""

    port: int = 0
    answer_pings: bool = True
    actions: list[dict[str, str]] = field(default_factory=list)
    logins: asyncio.Queue[asyncio.StreamWriter] = field(default_factory=asyncio.Queue)
    received: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                headers = dict(
                    line.split(": ", 1) for line in block.decode().split(EOL) if ": " in line
                )
                self.actions.append(headers)
                await self.received.put(headers.get("Action", ""))
                await self.answer(headers, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def answer(self, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        action, action_id = headers.get("Action", "").lower(), headers.get("ActionID", "")
        if action == "login":
            writer.write(frame(Response="Success", ActionID=action_id,
                               Message="Authentication accepted"))
            writer.write(frame(Event="FullyBooted", Privilege="system,all",
                               Status="Fully Booted", Uptime="3"))
            await self.logins.put(writer)
        elif action == "ping":
            if self.answer_pings:
                writer.write(frame(Response="Success", ActionID=action_id, Ping="Pong"))
        elif action == "getvar":
            writer.write(frame(Response="Success", ActionID=action_id,
                               Variable=headers["Variable"], Value="NOT_INUSE"))
        elif action == "originate":
            pass  # never answered: the test drops the link meanwhile
        else:
            writer.write(frame(Response="Error", ActionID=action_id,
                               Message="Invalid/unknown command"))
        await writer.drain()


@pytest.fixture
async def standin() -> AsyncIterator[StandInAmi]:
    state = StandInAmi()
    server = await asyncio.start_server(state.serve, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    yield state
    server.close()
    # The client has closed its side by now: each handler ends on end-of-file.
    if state.handlers:
        _, pending = await asyncio.wait(state.handlers, timeout=5)
        assert not pending, "a stand-in connection was left open"


def make_client(port: int, ping_interval: float = 30.0) -> AmiClient:
    return AmiClient("127.0.0.1", port, "cc", "pw", action_timeout=0.5,
                     ping_interval=ping_interval, reconnect_delay=1)


async def test_actions_events_and_guarded_subscribers(standin: StandInAmi) -> None:
    client = make_client(standin.port)
    events: asyncio.Queue[ami.AmiEvent] = asyncio.Queue()

    async def failing(event: ami.AmiEvent) -> None:
        raise RuntimeError("a subscriber bug must not kill the link")

    client.subscribe(failing)
    client.subscribe(events.put)
    await client.start()
    try:
        async with asyncio.timeout(5):
            await client.wait_connected()
            booted = await events.get()
        assert isinstance(booted, ami.FullyBooted) and booted.uptime_s == 3
        await client.ping()
        assert await client.device_state("PJSIP/agent-a1") == "NOT_INUSE"
        assert standin.actions[-1]["Variable"] == "DEVICE_STATE(PJSIP/agent-a1)"
        with pytest.raises(PbxRefused, match="unknown command"):
            await client.action({"Action": "NoSuchThing"})
        login = standin.actions[0]
        assert login["Action"] == "Login" and login["Username"] == "cc"
        assert client.link.up and client.link.reconnects == 0
    finally:
        await client.close()
    assert not client.link.up
    with pytest.raises(PbxUnreachable):
        await client.ping()


async def test_watchdog_reconnects_a_silent_link(standin: StandInAmi) -> None:
    client = make_client(standin.port, ping_interval=0.2)
    await client.start()
    try:
        async with asyncio.timeout(10):
            first = await standin.logins.get()
            await client.wait_connected()
            standin.answer_pings = False  # the server hangs: TCP open, no replies
            second = await standin.logins.get()
            assert second is not first
            standin.answer_pings = True
            await client.wait_connected()
        link = client.link
        assert link.up and link.reconnects == 1
        assert link.last_error is not None and "watchdog" in link.last_error
        assert link.last_down is not None and link.last_up is not None
        assert link.last_down <= link.last_up
    finally:
        await client.close()


async def test_originate_pending_at_disconnect_is_not_placed_twice(standin: StandInAmi) -> None:
    client = make_client(standin.port)
    await client.start()
    try:
        async with asyncio.timeout(10):
            writer = await standin.logins.get()
            await client.wait_connected()
            originate = asyncio.create_task(
                client.action({"Action": "Originate", "Channel": "PJSIP/agent-a1",
                               "Application": "Playback", "Data": "beep"}))
            while await standin.received.get() != "Originate":
                pass
            writer.close()  # the link drops with the Originate unanswered
            await standin.logins.get()
            with pytest.raises(PbxUnreachable):
                await originate
            await client.wait_connected()
            await client.ping()  # anything re-sent would have arrived before this answer
        placed = [a for a in standin.actions if a.get("Action") == "Originate"]
        assert len(placed) == 1 and placed[0]["Async"] == "true"
    finally:
        await client.close()
