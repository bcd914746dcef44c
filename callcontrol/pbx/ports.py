"""Free ports for an Asterisk instance, so several instances run side by side.

Single ports (SIP, HTTP/ARI, AMI) come from the kernel (bind to port 0). The RTP range is a
block picked at random below the kernel's ephemeral range and checked free; two instances that
happen to share a block still work (Asterisk retries another port of its range when one is
taken), the block only keeps them apart in the common case.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass

RTP_LOW = 10000
RTP_HIGH = 30000  # below Linux's ephemeral range (32768+), where port-0 binds land
RTP_BLOCK = 200


@dataclass(frozen=True)
class PbxPorts:
    """The ports one Asterisk instance listens on."""

    sip: int
    http: int
    ami: int
    rtp_start: int
    rtp_end: int


def _bindable(host: str, port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", *, udp_too: bool = False) -> int:
    """A TCP port free on ``host`` (and free for UDP too when ``udp_too``)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if not udp_too or _bindable(host, port, socket.SOCK_DGRAM):
            return port
    raise OSError(f"no free port on {host}")


def free_rtp_block(
    host: str = "127.0.0.1", size: int = RTP_BLOCK, rng: random.Random | None = None
) -> tuple[int, int]:
    """An even-aligned block of ``size`` UDP ports, all free now: ``(first, last)``."""
    rng = rng or random.Random()
    starts = list(range(RTP_LOW, RTP_HIGH - size, size))
    rng.shuffle(starts)
    for start in starts:
        if all(_bindable(host, p, socket.SOCK_DGRAM) for p in range(start, start + size)):
            return start, start + size - 1
    raise OSError(f"no free block of {size} UDP ports on {host}")


def allocate_ports(host: str = "127.0.0.1", rtp_size: int = RTP_BLOCK) -> PbxPorts:
    """Free ports for a whole instance (distinct from each other)."""
    taken: set[int] = set()

    def pick(udp_too: bool = False) -> int:
        while True:
            port = free_port(host, udp_too=udp_too)
            if port not in taken:
                taken.add(port)
                return port

    sip = pick(udp_too=True)
    http = pick()
    ami = pick()
    rtp_start, rtp_end = free_rtp_block(host, rtp_size)
    return PbxPorts(sip=sip, http=http, ami=ami, rtp_start=rtp_start, rtp_end=rtp_end)
