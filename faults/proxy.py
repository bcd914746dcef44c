"""A TCP proxy the harness controls: it carries one of the daemon's links (ARI or AMI) and
can cut it.

:meth:`LinkProxy.cut` does what a failing network or a dying peer does to the daemon: every
open connection is reset (RST, through ``SO_LINGER`` 0), then new connections are refused (the
listening socket is closed) for the length of the cut; :meth:`LinkProxy.restore` listens on
the same port again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field

LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


@dataclass
class LinkProxy:
    """Forwards ``listen_port`` on 127.0.0.1 to ``target_host:target_port``."""

    name: str
    listen_port: int
    target_host: str
    target_port: int
    accepted: int = 0
    reset: int = 0
    _server: asyncio.Server | None = None
    _pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def listening(self) -> bool:
        """True unless the link is cut."""
        return self._server is not None

    async def start(self) -> None:
        """Listen (again) on ``listen_port``."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1",
                                                      self.listen_port, reuse_address=True)

    async def cut(self) -> dict[str, float | int]:
        """Stop listening (new connections are refused) and reset every open connection;
        return how many were reset and when (epoch seconds)."""
        at = time.time()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        pairs = list(self._pairs)
        for pair in pairs:
            for writer in pair:
                _reset(writer)
        self._pairs.clear()
        self.reset += len(pairs)
        return {"cut_at": at, "connections_reset": len(pairs)}

    async def restore(self) -> float:
        """Listen again; return when (epoch seconds)."""
        await self.start()
        return time.time()

    async def close(self) -> None:
        """Cut for good and wait for the forwarding tasks."""
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _reset(client_w)  # the target is down: the daemon sees the connection fail
            return
        self.accepted += 1
        pair = (client_w, server_w)
        self._pairs.add(pair)
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pump(reader, writer, pair))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            if pair in self._pairs:  # one side ended: end the other the same way
                self._pairs.discard(pair)
                for side in pair:
                    side.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    writer.transport.abort()
