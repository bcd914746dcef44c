"""The harness's link proxy: forwards, resets open connections on a cut, refuses new ones,
listens again on restore (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from callcontrol.pbx.ports import free_port
from faults.proxy import LinkProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionResetError):  # the proxy resets this side too
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[LinkProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = LinkProxy("echo", free_port(), "127.0.0.1", port)
    await link.start()
    yield link
    await link.close()
    server.close()
    await server.wait_closed()


async def roundtrip(port: int, data: bytes) -> tuple[bytes, asyncio.StreamReader,
                                                      asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 5), reader, writer


async def test_cut_resets_refuses_then_restores(proxy: LinkProxy) -> None:
    echoed, reader, writer = await roundtrip(proxy.listen_port, b"hello")
    assert echoed == b"hello" and proxy.accepted == 1

    cut = await proxy.cut()
    assert cut["connections_reset"] == 1 and not proxy.listening
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(10), 5)
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.listen_port)

    await proxy.restore()
    echoed, _, again = await roundtrip(proxy.listen_port, b"back")
    assert echoed == b"back" and proxy.accepted == 2
    again.close()


async def test_a_connection_to_a_dead_target_is_reset(proxy: LinkProxy) -> None:
    dead = LinkProxy("dead", free_port(), "127.0.0.1", free_port())
    await dead.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", dead.listen_port)
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 5)
        writer.close()
        assert dead.accepted == 0
    finally:
        await dead.close()
