"""HttpPool (ARI's REST transport) against scripted loopback servers: framing, keep-alive,
and every way an answer can fail to arrive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from callcontrol.ari.http import HttpPool, HttpProtocolError


@dataclass
class Seen:
    """One request as the server read it."""

    head: list[str]
    body: bytes
    connection: int


Answer = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    """A loopback HTTP server that answers each request with ``answer`` (a script)."""

    answer: Answer
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    closed: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    handlers: list[tuple[asyncio.Task[None], asyncio.StreamWriter]] = field(default_factory=list)
    arrived: asyncio.Queue[Seen] = field(default_factory=asyncio.Queue)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.append((task, writer))
        self.connections += 1
        number = self.connections
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                head = raw.decode("latin-1").split("\r\n")[:-2]
                length = next((int(h.split(":")[1]) for h in head
                               if h.lower().startswith("content-length:")), 0)
                seen = Seen(head, await reader.readexactly(length), number)
                self.seen.append(seen)
                self.arrived.put_nowait(seen)
                await self.answer(seen, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()
            await self.closed.put(number)


@asynccontextmanager
async def serve(answer: Answer) -> AsyncIterator[Server]:
    server = Server(answer)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    async with listener:
        try:
            yield server
        finally:  # every connection ends with an end of file, none is left to be cancelled
            for _, writer in server.handlers:
                writer.close()
            await asyncio.wait_for(asyncio.gather(*(t for t, _ in server.handlers)), 5)


def reply(status: str, body: bytes = b"", *headers: str) -> Answer:
    async def answer(_: Seen, writer: asyncio.StreamWriter) -> None:
        lines = [f"HTTP/1.1 {status}", *headers]
        if not any(h.lower().startswith("content-length") for h in headers):
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
    return answer


def pool(server: Server, **kw: float) -> HttpPool:
    return HttpPool(server.url, {"Authorization": "Basic dTpw"}, **kw)  # type: ignore[arg-type]


async def test_requests_are_framed_and_one_connection_is_kept_alive() -> None:
    async with serve(reply("200 OK", b'{"id": "pb-1"}', "Content-Type: application/json")) as srv:
        http = pool(srv)
        first = await http.request("POST", "/ari/channels/c1/play/pb-1?media=sound:x,sound:y")
        second = await http.request("POST", "/ari/channels/create", b'{"variables": {}}')
        third = await http.request("GET", "/ari/asterisk/info")
        http.close()
    assert first.status == 200 and first.body == b'{"id": "pb-1"}' and second == first
    assert third.status == 200
    assert [s.connection for s in srv.seen] == [1, 1, 1]
    play, create, info = srv.seen
    assert play.head[0] == "POST /ari/channels/c1/play/pb-1?media=sound:x,sound:y HTTP/1.1"
    assert f"Host: {srv.url.removeprefix('http://')}" in play.head
    assert "Authorization: Basic dTpw" in play.head and "Content-Length: 0" in play.head
    assert create.body == b'{"variables": {}}'
    assert {"Content-Type: application/json", "Content-Length: 17"} <= set(create.head)
    assert info.head[0] == "GET /ari/asterisk/info HTTP/1.1"
    assert not any(h.lower().startswith("content-length") for h in info.head)


async def test_no_content_and_a_body_that_runs_until_the_close() -> None:
    async def until_close(_: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async with serve(reply("204 No Content", b"", "Content-Length: 0")) as srv:
        http = pool(srv)
        assert (await http.request("DELETE", "/ari/channels/c1")).body == b""
        assert (await http.request("DELETE", "/ari/channels/c1")).status == 204
        assert srv.connections == 1
    async with serve(until_close) as srv:
        http = pool(srv)
        answer = await http.request("GET", "/ari/x")
        assert (answer.status, answer.body) == (200, b"all of it")
        await http.request("GET", "/ari/x")
        assert srv.connections == 2  # a body read to the close leaves nothing to reuse


async def test_framing_headers_are_read_whatever_their_case_and_spacing() -> None:
    async with serve(reply("200 OK", b"ab\r\nContent-Length: 9", "content-LENGTH:\t 21",
                           "X-Connection: close")) as srv:
        http = pool(srv)
        assert (await http.request("GET", "/ari/a")).body == b"ab\r\nContent-Length: 9"
        await http.request("GET", "/ari/a")
        assert srv.connections == 1  # "X-Connection" is not "Connection"
    async with serve(reply("204 No Content", b"", "CONNECTION: Close")) as srv:
        http = pool(srv)
        for _ in range(2):
            await http.request("GET", "/ari/a")
        assert srv.connections == 2


async def test_a_connection_is_not_reused_after_close_or_when_idle_too_long() -> None:
    async with serve(reply("204 No Content", b"", "Connection: close")) as srv:
        http = pool(srv)
        for _ in range(3):
            await http.request("POST", "/ari/a")
        assert [s.connection for s in srv.seen] == [1, 2, 3]
    async with serve(reply("204 No Content")) as srv:
        http = pool(srv, idle_seconds=0.0)  # anything idle is too old
        for _ in range(2):
            await http.request("POST", "/ari/a")
        assert [s.connection for s in srv.seen] == [1, 2]
        assert await asyncio.wait_for(srv.closed.get(), 2) == 1  # the stale one was closed


async def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def answer_then_close(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await reply("204 No Content")(seen, writer)
        writer.close()  # as Asterisk does after session_keep_alive

    async with serve(answer_then_close) as srv:
        http = pool(srv)
        await http.request("POST", "/ari/a")
        assert await asyncio.wait_for(srv.closed.get(), 2) == 1
        async with asyncio.timeout(2):  # until the client's loop has read the close
            while http._idle[-1].usable:  # noqa: ASYNC110 - the pool has no hook for it
                await asyncio.sleep(0.005)
        assert (await http.request("POST", "/ari/a")).status == 204
        assert [s.connection for s in srv.seen] == [1, 2]


async def test_failures_raise_os_errors_or_timeouts_and_drop_the_connection() -> None:
    async def hang_up(_: Seen, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def garbage(_: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SIP/2.0 200 OK\r\n\r\n")
        await writer.drain()

    async def chunked(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await reply("200 OK", b"", "Transfer-Encoding: chunked",
                    "Content-Length: 0")(seen, writer)

    async with serve(hang_up) as srv:
        with pytest.raises(ConnectionResetError):
            await pool(srv).request("POST", "/ari/a")
    for script in (garbage, chunked):
        async with serve(script) as srv:
            with pytest.raises(HttpProtocolError):
                await pool(srv).request("POST", "/ari/a")
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    with pytest.raises(OSError):
        await HttpPool(f"http://127.0.0.1:{port}", {}).request("GET", "/ari/a")


async def test_a_timed_out_or_cancelled_request_closes_its_connection() -> None:
    release = asyncio.Event()

    async def slow(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if seen.head[0].startswith("GET /slow"):
            await release.wait()
        await reply("204 No Content")(seen, writer)

    async with serve(slow) as srv:
        http = pool(srv)
        with pytest.raises(TimeoutError):
            await http.request("GET", "/slow", timeout=0.1)
        await asyncio.wait_for(srv.arrived.get(), 2)
        pending = asyncio.create_task(http.request("GET", "/slow"))
        await asyncio.wait_for(srv.arrived.get(), 2)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        release.set()
        assert (await http.request("POST", "/fast")).status == 204
        assert [s.connection for s in srv.seen] == [1, 2, 3]  # neither was reused


async def test_requests_beyond_the_limit_wait_for_a_connection() -> None:
    release = asyncio.Event()

    async def held(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        await reply("204 No Content")(seen, writer)

    async with serve(held) as srv:
        http = pool(srv, limit=2)
        tasks = [asyncio.create_task(http.request("POST", f"/ari/{n}")) for n in range(3)]
        for _ in range(2):
            await asyncio.wait_for(srv.arrived.get(), 2)
        assert srv.connections == 2 and len(srv.seen) == 2
        release.set()
        assert [r.status for r in await asyncio.gather(*tasks)] == [204, 204, 204]
        assert srv.connections == 2  # the third reused a freed connection


async def test_a_request_in_flight_when_the_pool_closes_closes_its_connection() -> None:
    release = asyncio.Event()

    async def held(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        await reply("204 No Content")(seen, writer)

    async with serve(held) as srv:
        http = pool(srv)
        pending = asyncio.create_task(http.request("POST", "/ari/a"))
        await asyncio.wait_for(srv.arrived.get(), 2)
        http.close()
        release.set()
        assert (await pending).status == 204
        assert await asyncio.wait_for(srv.closed.get(), 2) == 1  # not kept for reuse


def test_only_http_urls() -> None:
    with pytest.raises(ValueError):
        HttpPool("ws://127.0.0.1:8088", {})


async def test_connections_left_idle_close_without_another_request() -> None:
    """A burst opens several connections; once the daemon goes quiet they all close after
    ``idle_seconds``, with no request to trigger it (the soak's open fds stay flat)."""
    async with serve(reply("204 No Content")) as srv:
        http = pool(srv, idle_seconds=0.2)
        await asyncio.gather(*(http.request("POST", "/ari/a") for _ in range(3)))
        assert srv.connections == 3 and len(http._idle) == 3
        closed = [await asyncio.wait_for(srv.closed.get(), 2) for _ in range(3)]
        assert sorted(closed) == [1, 2, 3] and not http._idle
        assert http._sweep is None  # nothing idle, no timer left behind
        assert (await http.request("POST", "/ari/a")).status == 204  # a new one is opened
        assert srv.connections == 4
        http.close()
        assert http._sweep is None
