"""The http step client against a local aiohttp server: allowlist, 2xx JSON, errors, timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from callcontrol.flows.expressions import Sandbox
from callcontrol.flows.httpstep import HttpRequest, HttpStepClient, host_allowed, render_request
from callcontrol_testing.http import serve_app


@pytest.fixture
async def server() -> AsyncIterator[str]:
    release = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        return web.json_response(
            {"id": request.match_info["id"], "auth": request.headers.get("Authorization")}
        )

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="not json")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.add_routes(
        [
            web.get("/c/{id}", ok),
            web.get("/fail", fail),
            web.get("/text", text),
            web.get("/slow", slow),
        ]
    )
    async with serve_app(app) as url:
        yield url
        release.set()


async def test_success_and_failures(server: str) -> None:
    sandbox = Sandbox({"TOKEN": "abc123"})
    client = HttpStepClient(["127.0.0.1"])
    try:
        request = render_request(
            sandbox,
            {"id": "a/b"},
            method="get",
            url=server + "/c/{{ id }}",
            headers={"Authorization": "Bearer {{ secrets.TOKEN }}"},
        )
        outcome = await client.send(request)
        assert outcome.ok and outcome.status == 200
        assert outcome.body == {"id": "a/b", "auth": "Bearer abc123"}
        assert "abc123" not in repr(request.describe(sandbox))
        for path, status in (("/fail", 500), ("/text", 200)):
            bad = await client.send(HttpRequest("GET", server + path))
            assert not bad.ok and bad.status == status and bad.ms >= 0
        slow = await client.send(HttpRequest("GET", server + "/slow", timeout=0.2))
        assert not slow.ok and slow.status is None and "timeout" in slow.error
        assert slow.ms >= 200
    finally:
        await client.close()


async def test_refused_host_and_connection_error() -> None:
    client = HttpStepClient(["127.0.0.1", "*.example.com"])
    try:
        refused = await client.send(HttpRequest("GET", "http://evil.test/x"))
        assert not refused.ok and "allowlist" in refused.error and refused.ms == 0
        closed = await client.send(HttpRequest("GET", "http://127.0.0.1:1/x", timeout=2))
        assert not closed.ok and closed.status is None
    finally:
        await client.close()
    assert host_allowed("https://crm.example.com/x", ["*.example.com"])
    assert not host_allowed("https://example.com.evil.test/x", ["*.example.com"])
    assert not host_allowed("file:///etc/passwd", ["127.0.0.1"])
