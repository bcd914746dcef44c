"""The isolated Asterisk boots with the project's config and answers on its own ports."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import aiohttp
import pytest

from callcontrol_testing.testbed import PbxTestbed, start_testbed

pytestmark = pytest.mark.integration


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_core_show_version_says_22(pbx: PbxTestbed) -> None:
    out = await pbx.instance.cli("core show version")
    assert out.startswith("Asterisk 22."), out


async def test_ari_info_needs_the_generated_credentials(pbx: PbxTestbed) -> None:
    url = f"{pbx.ari_url}/ari/asterisk/info"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=_basic(pbx.ari_user, pbx.ari_password)) as resp:
            assert resp.status == 200
            info = await resp.json()
        assert info["system"]["version"].startswith("22.")
        async with http.get(url) as resp:
            assert resp.status == 401
        async with http.get(url, headers=_basic(pbx.ari_user, "wrong")) as resp:
            assert resp.status == 401


async def test_ami_login_works_with_the_generated_secret(pbx: PbxTestbed) -> None:
    async def login(secret: str) -> str:
        reader, writer = await asyncio.open_connection(pbx.sip_host, pbx.ami_port)
        try:
            banner = await asyncio.wait_for(reader.readline(), 5)
            assert banner.startswith(b"Asterisk Call Manager")
            writer.write(
                f"Action: Login\r\nUsername: {pbx.ami_user}\r\nSecret: {secret}\r\n\r\n".encode()
            )
            await writer.drain()
            reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            return reply.decode()
        finally:
            writer.close()
            await writer.wait_closed()

    assert "Response: Success" in await login(pbx.ami_password)
    assert "Response: Error" in await login("wrong")


async def test_every_tcp_listener_and_sip_are_on_loopback_only(pbx: PbxTestbed) -> None:
    proc = await asyncio.create_subprocess_exec(
        "ss", "-H", "-lntup", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    ours = [
        line.split() for line in out.decode().splitlines() if f"pid={pbx.instance.pid}," in line
    ]
    tcp = {row[4] for row in ours if row[0] == "tcp"}
    assert tcp == {f"127.0.0.1:{pbx.instance.http_port}", f"127.0.0.1:{pbx.ami_port}"}
    udp = {row[4] for row in ours if row[0] == "udp"}
    assert f"127.0.0.1:{pbx.sip_port}" in udp
    assert not any(
        addr.endswith(f":{pbx.sip_port}") and not addr.startswith("127.") for addr in udp
    )


async def test_two_instances_run_side_by_side(pbx: PbxTestbed, tmp_path: Path) -> None:
    other = await start_testbed(tmp_path, f"test-{os.getpid()}-second", agent_ids=("b1",))
    try:
        assert other.instance.pid != pbx.instance.pid
        assert other.sip_port != pbx.sip_port
        for bed in (pbx, other):
            assert (await bed.instance.cli("core show version")).startswith("Asterisk 22.")
            endpoints = await bed.instance.cli("pjsip show endpoints")
            assert ("agent-b1" in endpoints) == (bed is other)
        async with aiohttp.ClientSession() as http:
            # each instance takes only its own credentials
            url = f"{other.ari_url}/ari/asterisk/info"
            async with http.get(url, headers=_basic(pbx.ari_user, pbx.ari_password)) as resp:
                assert resp.status == 401
            async with http.get(url, headers=_basic(other.ari_user, other.ari_password)) as resp:
                assert resp.status == 200
        await other.instance.restart()
        assert (await other.instance.cli("core show version")).startswith("Asterisk 22.")
    finally:
        await other.stop()
    assert other.instance.pid is None
    assert not other.instance.host_dir.exists()
    assert (await pbx.instance.cli("core show version")).startswith("Asterisk 22.")
