"""AriClient against a local stand-in ARI server: auth, errors, timeouts, reconnect."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import WSMsgType, web

from callcontrol.ari import protocol as ari
from callcontrol.ari.client import AriClient, backoff_delay
from callcontrol.errors import NotFound, PbxUnreachable, Unprocessable
from callcontrol_testing.http import serve_app

USER, PASSWORD = "cc-user", "s3cret-pw"
EXPECTED_AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@dataclass
class StandIn:
    """A minimal ARI: records what it sees, serves events sockets on demand."""

    url: str = ""
    sockets: asyncio.Queue[web.WebSocketResponse] = field(default_factory=asyncio.Queue)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    polls: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    async def info(self, request: web.Request) -> web.Response:
        self.seen.append((request.path_qs, "info", request.headers.get("Authorization")))
        return web.json_response({"system": {"version": "22.10.1"}})

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response({"query": dict(request.query), "body": body,
                                  "type": request.content_type})

    async def refuse(self, request: web.Request) -> web.Response:
        return web.Response(status=422, text="Channel not in Stasis application")

    async def missing(self, request: web.Request) -> web.Response:
        return web.json_response({"message": "Channel not found"}, status=404)

    async def slow(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.json_response({})

    async def applications(self, request: web.Request) -> web.Response:
        await self.polls.put(None)
        return web.json_response([{"name": a} for a in self.apps])

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path_qs, "events", request.headers.get("Authorization")))
        await self.attempts.put(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != EXPECTED_AUTH:
            return web.Response(status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await self.sockets.put(ws)
        async for msg in ws:
            if msg.type is WSMsgType.CLOSE:
                break
        return ws


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    state = StandIn()
    app = web.Application()
    app.router.add_get("/ari/asterisk/info", state.info)
    app.router.add_get("/ari/channels/missing", state.missing)
    app.router.add_get("/ari/slow", state.slow)
    app.router.add_post("/ari/echo", state.echo)
    app.router.add_post("/ari/refuse", state.refuse)
    app.router.add_get("/ari/applications", state.applications)
    app.router.add_get("/ari/events", state.events)
    async with serve_app(app) as url:
        state.url = url
        yield state
        state.release.set()


def make_client(url: str, password: str = PASSWORD, timeout: float = 2.0) -> AriClient:
    return AriClient(url, USER, password, "callcontrol", request_timeout=timeout,
                     reconnect_max_delay=0.05, reconnect_min_delay=0.01)


def stasis_end(channel_id: str) -> str:
    return json.dumps({"type": "StasisEnd", "application": "callcontrol",
                       "timestamp": "2024-05-06T08:15:31.250+0000",
                       "channel": {"id": channel_id}})


def test_backoff_grows_to_the_cap_with_jitter() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, 0.1, 2.0, rng) for n in range(12)]
    assert all(0.05 <= d <= 2.0 for d in delays)
    assert delays[0] <= 0.1 and max(delays[-4:]) > 1.0
    assert backoff_delay(1000, 0.1, 2.0, rng) <= 2.0


async def test_requests_authenticate_in_a_header_and_map_errors(standin: StandIn) -> None:
    client = make_client(standin.url, timeout=0.3)
    await client.start()
    try:
        info = await client.request(ari.asterisk_info())
        assert info["system"]["version"].startswith("22.")
        path, _, auth = next(s for s in standin.seen if s[1] == "info")
        assert auth == EXPECTED_AUTH and PASSWORD not in path
        with pytest.raises(NotFound):
            await client.request(ari.Request("GET", "/channels/missing"))
        with pytest.raises(PbxUnreachable):
            await client.request(ari.Request("GET", "/slow"))
    finally:
        await client.close()
    assert PASSWORD not in repr(client)


async def test_parameters_and_bodies_arrive_as_sent_and_commands_are_not_decoded(
    standin: StandIn,
) -> None:
    """Query values keep every character (``+`` is not a space to Asterisk), JSON bodies are
    typed as such; a command (``send``) maps refusals exactly as ``request`` does."""
    client = make_client(standin.url)
    await client.start()
    try:
        params = {"media": "sound:a,sound:b", "callerId": '"Help Desk" <+4930111>',
                  "name": "2026/12/03/r 1&x=y"}
        echoed = await client.request(ari.Request("POST", "/echo", params,
                                                  {"variables": {"X": "ü"}}))
        assert echoed == {"query": params, "body": {"variables": {"X": "ü"}},
                          "type": "application/json"}
        assert await client.send(ari.Request("POST", "/echo", params)) is None
        with pytest.raises(Unprocessable) as refused:
            await client.send(ari.Request("POST", "/refuse"))
        assert refused.value.message == "Channel not in Stasis application"
        with pytest.raises(NotFound):
            await client.send(ari.Request("GET", "/channels/missing"))
    finally:
        await client.close()


async def test_unreachable_and_not_started() -> None:
    client = make_client("http://127.0.0.1:1")
    with pytest.raises(PbxUnreachable):
        await client.request(ari.asterisk_info())
    await client.start()
    try:
        with pytest.raises(PbxUnreachable):
            await client.request(ari.asterisk_info())
        assert not client.link.up
    finally:
        await client.close()


async def test_events_flow_and_the_socket_comes_back(standin: StandIn) -> None:
    client = make_client(standin.url)
    received: asyncio.Queue[ari.AriEvent] = asyncio.Queue()
    connected: asyncio.Queue[int] = asyncio.Queue()

    async def on_event(event: ari.AriEvent) -> None:
        if isinstance(event, ari.StasisEnd) and event.channel.id == "boom":
            raise RuntimeError("a failing handler must not stop the listener")
        await received.put(event)

    async def on_connected() -> None:
        await connected.put(client.link.reconnects)

    client.on_event(on_event)
    client.on_connected(on_connected)
    await client.start()
    try:
        async with asyncio.timeout(5):
            ws = await standin.sockets.get()
            assert await connected.get() == 0
            path = standin.seen[-1][0]
            assert "app=callcontrol" in path and "subscribeAll=false" in path
            assert PASSWORD not in path
            await ws.send_str(stasis_end("boom"))
            await ws.send_str(stasis_end("c1"))
            event = await received.get()
            assert isinstance(event, ari.StasisEnd) and event.channel.id == "c1"
            first_up = client.link.last_up

            await ws.close()  # Asterisk went away
            ws = await standin.sockets.get()
            assert await connected.get() == 1
        link = client.link
        assert link.up and link.reconnects == 1
        assert first_up is not None and link.last_down is not None and link.last_up is not None
        assert first_up <= link.last_down <= link.last_up
    finally:
        await client.close()
    assert not client.link.up


async def test_wrong_password_keeps_retrying_with_the_error_recorded(standin: StandIn) -> None:
    client = make_client(standin.url, password="wrong")
    await client.start()
    try:
        async with asyncio.timeout(5):
            for _ in range(3):
                assert await standin.attempts.get() != EXPECTED_AUTH
        assert not client.link.up
        assert client.link.last_error is not None and "401" in client.link.last_error
        assert "wrong" not in client.link.last_error
    finally:
        await client.close()


async def test_replaced_application_waits_until_released(standin: StandIn) -> None:
    client = make_client(standin.url)
    await client.start()
    try:
        async with asyncio.timeout(5):
            ws = await standin.sockets.get()
            await client.wait_connected()
            standin.apps = ["callcontrol"]  # the other connection holds our app
            await ws.send_str(json.dumps({"type": "ApplicationReplaced",
                                          "application": "callcontrol"}))
            await standin.polls.get()  # it asks whether the app is still held
        assert client.replaced and client.link.last_error == "application replaced"
        # While the app is held elsewhere, no new socket is opened.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await standin.sockets.get()
        standin.apps = []
        async with asyncio.timeout(5):
            await standin.sockets.get()
            await client.wait_connected()
        assert client.link.up and not client.replaced
    finally:
        await client.close()


