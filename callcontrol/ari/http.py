"""ARI's REST calls over plain HTTP/1.1 keep-alive connections, without a general client.

A REST call to Asterisk is one small request and one small answer with a ``Content-Length``
over a loopback or LAN connection. aiohttp's client spent about twice the CPU per call on what
ARI never uses (cookie jar, tracing hooks, URL objects, header multidicts, redirects, charset
detection): measured on this machine with a stand-in server in another process, 300-370 µs of
the daemon's CPU per request against 160-230 µs here, at the 200-250 requests per second of
20 calls/s. The events WebSocket stays on aiohttp.

:class:`HttpPool` keeps idle connections for reuse, newest first, and closes those idle longer
than ``idle_seconds`` (below Asterisk's ``session_keep_alive``, 15 s by default, so a reused
connection is not one Asterisk is closing), also when no request follows: a timer set for the
oldest idle connection's expiry closes what a burst left open once the daemon goes quiet.
A connection carries one request at a time. Every failure to get a complete answer (refused,
reset, closed early, malformed, timed out) raises an :class:`OSError` and closes that
connection; nothing is retried (a POST may have been acted on).
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

_HEAD_END = b"\r\n\r\n"
# the framing headers of a lower-cased response head: (name, value)
_FRAMING = re.compile(rb"\r\n(content-length|connection|transfer-encoding)[ \t]*:[ \t]*([^\r]*)")
_MAX_HEAD = 64 * 1024
_NO_BODY = frozenset({204, 304})
IDLE_SECONDS = 10.0  # how long a connection may sit idle (below session_keep_alive's 15 s)
_SWEEP_SLACK = 0.05  # seconds after an idle connection's expiry before the timer checks it


class HttpProtocolError(ConnectionError):
    """The server's answer could not be read as HTTP/1.1 (or came without a request)."""


@dataclass(frozen=True)
class Response:
    """A complete answer: its status and raw body (empty when it had none)."""

    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: writes a request, reads one framed response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Response] | None = None
        self._status = 0
        self._length: int | None = None  # body bytes expected; None: until the server closes
        self._body_at = -1  # where the body starts in the buffer (-1: head not read yet)
        self._keep = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def exchange(self, data: bytes) -> asyncio.Future[Response]:
        """Send one request; the future resolves with its response."""
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self._body_at = -1
        self.transport.write(data)
        return self._waiter

    @property
    def usable(self) -> bool:
        """Whether the connection is still open (as far as we have heard)."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    @property
    def reusable(self) -> bool:
        """Whether the last answer left the connection open for another request."""
        return self._keep and self.usable

    def close(self) -> None:
        """Close the connection (a pending request fails)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self._fail(HttpProtocolError("data without a request"))
            return
        self._buffer += data
        try:
            if self._body_at < 0 and not self._read_head():
                return
        except (ValueError, IndexError) as exc:
            self._fail(HttpProtocolError(f"malformed response head: {exc}"))
            return
        if self._length is not None and len(self._buffer) - self._body_at >= self._length:
            if len(self._buffer) - self._body_at > self._length:
                self._keep = False  # more than one answer to one request: do not trust it
            self._finish(bytes(self._buffer[self._body_at:self._body_at + self._length]))

    def _read_head(self) -> bool:
        end = self._buffer.find(_HEAD_END)
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise ValueError("head too long")
            return False
        head = bytes(self._buffer[:end]).lower()
        version, status = head.partition(b"\r\n")[0].split(b" ", 2)[:2]
        if not version.startswith(b"http/1."):
            raise ValueError(f"not an HTTP/1 status line: {head[:40]!r}")
        self._status = int(status)
        self._keep = version == b"http/1.1"
        self._length = 0 if self._status in _NO_BODY else None
        for name, value in _FRAMING.findall(head):  # the only headers that matter here
            if name == b"content-length":
                if self._length is None:
                    self._length = int(value)
            elif name == b"connection":
                self._keep = self._keep and b"close" not in value
            else:
                raise ValueError(f"transfer-encoding {value.strip()!r} is not read")
        if self._length is None:
            self._keep = False
        self._body_at = end + len(_HEAD_END)
        return True

    def _finish(self, body: bytes) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._status, body))

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def eof_received(self) -> bool:
        self.closed = True  # the server is closing: not reused, even before the close lands
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._body_at >= 0 and self._length is None:  # the body ran until the close
            self._keep = False
            self._finish(bytes(self._buffer[self._body_at:]))
            return
        self._fail(ConnectionResetError(f"connection closed before the answer ({exc})"
                                        if exc else "connection closed before the answer"))


class HttpPool:
    """Keep-alive HTTP/1.1 connections to one server; :meth:`request` sends one request.

    ``url`` is the server's base (``http://host:port`` or ``https://...``, optional path
    prefix); ``headers`` go with every request (``Authorization``...).
    """

    def __init__(self, url: str, headers: dict[str, str], *, idle_seconds: float = IDLE_SECONDS,
                 limit: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        host = parts.netloc.rpartition("@")[2]
        fixed = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._head_tail = f" HTTP/1.1\r\nHost: {host}\r\n{fixed}".encode("latin-1")
        self._idle: collections.deque[_Connection] = collections.deque()
        self._idle_seconds = idle_seconds
        self._slots = asyncio.Semaphore(limit)
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def request(self, method: str, target: str, body: bytes | None = None,
                      timeout: float = 5.0) -> Response:
        """Send ``method target`` (``target``: path and query, already escaped, below the
        base's path) with an optional JSON ``body``; return the complete response.

        Raises :class:`OSError` (refused, reset, closed early, malformed answer) or
        :class:`TimeoutError` after ``timeout`` seconds; the connection is then closed.
        """
        head = b"".join((method.encode("ascii"), b" ", (self._prefix + target).encode("ascii"),
                         self._head_tail))
        if body:
            data = b"%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                head, len(body), body)
        else:
            data = head + b"Content-Length: 0\r\n\r\n" if method != "GET" else head + b"\r\n"
        async with self._slots, asyncio.timeout(timeout):
            connection = await self._acquire()
            try:
                response = await connection.exchange(data)
            except BaseException:
                connection.close()
                raise
        self._release(connection)
        return response

    async def _acquire(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable and now - connection.idle_since < self._idle_seconds:
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            _Connection, self._host, self._port, ssl=self._ssl)
        return connection

    def _release(self, connection: _Connection) -> None:
        if self._closed or not connection.reusable:
            connection.close()
            return
        now = time.monotonic()
        connection.idle_since = now
        self._idle.append(connection)
        self._close_expired(now)
        if self._sweep is None:
            self._schedule_sweep()

    def _close_expired(self, now: float) -> None:
        while self._idle and (not self._idle[0].usable
                              or now - self._idle[0].idle_since >= self._idle_seconds):
            self._idle.popleft().close()  # the oldest idle ones, newest kept for reuse

    def _schedule_sweep(self) -> None:
        """Wake when the oldest idle connection expires (one timer at most)."""
        if self._idle:
            due = self._idle[0].idle_since + self._idle_seconds - time.monotonic()
            self._sweep = asyncio.get_running_loop().call_later(
                max(0.0, due) + _SWEEP_SLACK, self._on_sweep)

    def _on_sweep(self) -> None:
        self._sweep = None
        self._close_expired(time.monotonic())
        self._schedule_sweep()

    def close(self) -> None:
        """Close every idle connection (requests in flight close theirs when they end)."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self._idle:
            self._idle.popleft().close()
