"""Host <-> PBX path mapping, ports and the provisioning script's output."""

from __future__ import annotations

import socket
from pathlib import Path, PurePosixPath

import pytest

from callcontrol.pbx.paths import PathMap
from callcontrol.pbx.ports import allocate_ports, free_rtp_block
from callcontrol.pbx.provision import Launcher, ProvisionError, parse_script_output

ROOT = Path("/cache/asterisk-root")
MAP = PathMap(
    root=ROOT,
    mounts={
        PurePosixPath("/srv/callcontrol/t/prompts"): Path("/repo/ivr_flows/prompts"),
        PurePosixPath("/srv/callcontrol/t/recordings"): Path("/data/recordings"),
    },
)


def test_chroot_paths_map_both_ways() -> None:
    host = ROOT / "srv/callcontrol/t/spool/recording/r1.wav"
    assert MAP.to_pbx(host) == "/srv/callcontrol/t/spool/recording/r1.wav"
    assert MAP.to_host("/srv/callcontrol/t/spool/recording/r1.wav") == host


def test_bind_mounted_folders_map_to_their_host_source() -> None:
    assert MAP.to_pbx("/repo/ivr_flows/prompts/welcome") == "/srv/callcontrol/t/prompts/welcome"
    assert MAP.to_host("/srv/callcontrol/t/recordings/2026/a.wav") == Path(
        "/data/recordings/2026/a.wav"
    )
    assert MAP.to_pbx("/data/recordings") == "/srv/callcontrol/t/recordings"


def test_a_host_path_asterisk_cannot_see_is_an_error() -> None:
    with pytest.raises(ValueError):
        MAP.to_pbx("/home/someone/file.wav")
    with pytest.raises(ValueError):
        MAP.to_host("relative/path")


def test_native_paths_are_identical() -> None:
    native = PathMap()
    assert native.to_pbx("/var/x.wav") == "/var/x.wav"
    assert native.to_host("/var/x.wav") == Path("/var/x.wav")


def test_allocated_ports_are_distinct_and_bindable() -> None:
    ports = allocate_ports()
    singles = {ports.sip, ports.http, ports.ami}
    assert len(singles) == 3
    assert ports.rtp_end - ports.rtp_start == 199
    assert not singles & set(range(ports.rtp_start, ports.rtp_end + 1))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", ports.sip))


def test_rtp_block_skips_a_block_in_use() -> None:
    first, last = free_rtp_block(size=50)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", first + 10))
        for _ in range(20):
            start, end = free_rtp_block(size=50)
            assert not start <= first + 10 <= end
    assert last - first == 49


def test_script_output_gives_the_launcher() -> None:
    assert parse_script_output("native\n") == Launcher()
    launcher = parse_script_output("some log\n/root/.cache/callcontrol/asterisk-root\n")
    assert launcher.root == Path("/root/.cache/callcontrol/asterisk-root")
    assert launcher.command("-rx", "core show version") == [
        "chroot",
        "/root/.cache/callcontrol/asterisk-root",
        "/usr/sbin/asterisk",
        "-rx",
        "core show version",
    ]
    assert Launcher().command("-V") == ["asterisk", "-V"]
    with pytest.raises(ProvisionError):
        parse_script_output("")
    with pytest.raises(ProvisionError):
        parse_script_output("relative/root")
