"""The http step client against a local aiohttp server: allowlist, 2xx JSON, errors, timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

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

    async def nested(request: web.Request) -> web.Response:
        depth = int(request.match_info["depth"])
        return web.Response(text="[" * depth + "]" * depth, content_type="application/json")

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
            web.get("/nested/{depth}", nested),
        ]
    )
    async with serve_app(app) as url:
        yield url
        release.set()


async def test_success_and_failures(server: str) -> None:
    sandbox = Sandbox({"TOKEN": "abc123"})
    client = HttpStepClient([f"127.0.0.1:{urlsplit(server).port}"])
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
        assert request.secret_parts == ("abc123",)
        assert request.describe()["headers"] == ["Authorization"]
        for path, status in (("/fail", 500), ("/text", 200)):
            bad = await client.send(HttpRequest("GET", server + path))
            assert not bad.ok and bad.status == status and bad.ms >= 0
        slow = await client.send(HttpRequest("GET", server + "/slow", timeout=0.2))
        assert not slow.ok and slow.status is None and "timeout" in slow.error
        assert slow.ms >= 200
    finally:
        await client.close()


async def test_refused_host_and_connection_error() -> None:
    client = HttpStepClient(["127.0.0.1:1", "*.example.com"])
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


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1/x", True),  # no port in the entry: the scheme's default port
        ("https://127.0.0.1/x", True),
        ("http://127.0.0.1:80/x", True),
        ("http://127.0.0.1:8088/ari/channels", False),  # ARI on the same host: refused
        ("http://127.0.0.1:5038/", False),
        ("http://127.0.0.1:9000/crm", True),
        ("http://127.0.0.1:9001/crm", False),
        ("http://localhost:9000/crm", False),
        ("https://crm.example.com/x", True),
        ("https://crm.example.com:8443/x", False),
        ("http://[::1]:8080/x", True),
        ("http://[::1]:8081/x", False),
        ("http://127.0.0.1:99999/x", False),  # not a port
        ("http://127.0.0.1:x/", False),
    ],
)
def test_allowlist_is_by_host_and_port(url: str, allowed: bool) -> None:
    allow = ["127.0.0.1", "127.0.0.1:9000", "*.example.com", "[::1]:8080", "bad:port:x"]
    assert host_allowed(url, allow) is allowed


async def test_deeply_nested_answer_takes_the_error_path(server: str) -> None:
    client = HttpStepClient([f"127.0.0.1:{urlsplit(server).port}"])
    try:
        fine = await client.send(HttpRequest("GET", server + "/nested/64"))
        assert fine.ok
        for depth in (65, 5000, 500_000):  # 500 000: RecursionError in json.loads before
            deep = await client.send(HttpRequest("GET", server + f"/nested/{depth}"))
            assert (deep.ok, deep.status) == (False, 200)
            assert "nested deeper than 64" in deep.error
    finally:
        await client.close()
