"""The ARI application's event filter: the ignored event types are of no use to the daemon, and
the client asks Asterisk to stop sending them at every connect, before the connected handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from structlog.testing import capture_logs

from callcontrol.ari import protocol as ari
from callcontrol.ari.adapter import IGNORED_EVENTS, translate
from callcontrol.ari.client import AriClient
from callcontrol_testing.http import serve_app


@dataclass
class FilterStandIn:
    """Serves the events socket and the event filter; records what was asked, in order."""

    url: str = ""
    filter_status: int = 200
    seen: list[tuple[str, Any]] = field(default_factory=list)
    sockets: asyncio.Queue[web.WebSocketResponse] = field(default_factory=asyncio.Queue)

    async def event_filter(self, request: web.Request) -> web.Response:
        self.seen.append(("filter", await request.json()))
        if self.filter_status != 200:
            return web.json_response({"message": "no"}, status=self.filter_status)
        return web.json_response({"name": request.match_info["app"]})

    async def events(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await self.sockets.put(ws)
        async for msg in ws:
            if msg.type is WSMsgType.CLOSE:
                break
        return ws


@pytest.fixture
async def standin() -> AsyncIterator[FilterStandIn]:
    state = FilterStandIn()
    app = web.Application()
    app.router.add_put("/ari/applications/{app}/eventFilter", state.event_filter)
    app.router.add_get("/ari/events", state.events)
    async with serve_app(app) as url:
        state.url = url
        yield state


def test_ignored_events_translate_to_nothing() -> None:
    channel = {"id": "c1", "state": "Up", "caller": {"number": "1"}}
    bridge = {"id": "b1", "channels": ["c1"]}
    for name in IGNORED_EVENTS:
        event = ari.parse_event({"type": name, "variable": "X", "value": "1", "channel": channel,
                                 "bridge": bridge})
        assert not isinstance(event, ari.UnknownEvent), name
        assert translate(event) == []


def test_filter_request_lists_the_disallowed_types() -> None:
    request = ari.filter_events("call control", ["ChannelVarset"])
    assert (request.method, request.path) == ("PUT", "/applications/call%20control/eventFilter")
    assert request.json == {"disallowed": [{"type": "ChannelVarset"}]}


async def connect(standin: FilterStandIn) -> AriClient:
    client = AriClient(standin.url, "u", "p", "callcontrol", request_timeout=2.0,
                       reconnect_max_delay=0.05, reconnect_min_delay=0.01,
                       ignored_events=IGNORED_EVENTS)
    connected = asyncio.Event()

    async def on_connected() -> None:
        standin.seen.append(("connected", None))
        connected.set()

    client.on_connected(on_connected)
    await client.start()
    await asyncio.wait_for(connected.wait(), 5)
    return client


async def test_filter_is_set_before_the_connected_handlers(standin: FilterStandIn) -> None:
    client = await connect(standin)
    try:
        assert standin.seen == [
            ("filter", {"disallowed": [{"type": name} for name in IGNORED_EVENTS]}),
            ("connected", None),
        ]
    finally:
        await client.close()


async def test_a_refused_filter_is_only_logged(standin: FilterStandIn) -> None:
    standin.filter_status = 501
    with capture_logs() as logs:
        client = await connect(standin)
    try:
        assert [name for name, _ in standin.seen] == ["filter", "connected"]
        assert client.link.up
        assert [e for e in logs if e["event"] == "ari_event_filter_failed"]
    finally:
        await client.close()
