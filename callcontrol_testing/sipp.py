"""Run sipp (Debian's ``sip-tester``) with the project's scenarios and read its statistics.

:func:`run_sipp` prepares a scratch folder (``pcap/`` with the G.711 a-law audio and the chosen
digit's RFC 2833 pcap from ``/usr/share/sip-tester``, an injection file holding the caller's
user and password so no secret is on the command line), runs sipp there with ``-trace_stat``
and returns the exit code with the parsed cumulative statistics.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from callcontrol.errors import CallControlError

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "tests" / "sipp"
UAC_AUTH_PCAP_DTMF = SCENARIO_DIR / "uac_auth_pcap_dtmf.xml"
PCAP_SOURCE = Path("/usr/share/sip-tester")
_DIGIT_PCAPS = {
    **{d: f"dtmf_2833_{d}.pcap" for d in "0123456789"},
    "*": "dtmf_2833_star.pcap",
    "#": "dtmf_2833_pound.pcap",
}
_MEDIA_PORTS = range(40000, 60000, 4)  # sipp uses -mp and -mp+2: keep instances 4 apart
_EXIT_MEANINGS = {
    0: "all calls succeeded",
    1: "at least one call failed",
    97: "exit on internal command",
    99: "no call was processed",
    255: "fatal error",
    254: "fatal error binding a socket",
}


class SippError(CallControlError):
    """sipp could not be run, or ran without writing statistics."""

    error_id = "sipp"


@dataclass(frozen=True)
class SippStats:
    """Cumulative figures of a sipp run (the ``(C)`` columns of its last statistics line)."""

    created: int
    successful: int
    failed: int
    response_time_ms: float | None
    raw: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SippResult:
    """Exit code, statistics and the tail of sipp's error log."""

    returncode: int
    stats: SippStats
    errors: str

    @property
    def ok(self) -> bool:
        """True when every call succeeded."""
        return self.returncode == 0

    @property
    def meaning(self) -> str:
        """sipp's meaning of the exit code."""
        return _EXIT_MEANINGS.get(self.returncode, f"exit code {self.returncode}")


def parse_duration_ms(value: str) -> float:
    """sipp's ``HH:MM:SS:ffffff`` (or ``:mmm``) duration in milliseconds."""
    hours, minutes, seconds, fraction = value.strip().split(":")
    scale = float(10 ** len(fraction))
    total = int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction) / scale
    return total * 1000.0


def parse_stat_csv(text: str) -> SippStats:
    """Parse sipp's ``-trace_stat`` file (``;``-separated, header then one line per dump)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise SippError("sipp statistics file holds no data line")
    header = lines[0].split(";")
    values = lines[-1].split(";")
    row = dict(zip(header, values, strict=False))
    rtd = row.get("ResponseTimeinvite(C)") or row.get("ResponseTime1(C)")
    return SippStats(
        created=int(row.get("TotalCallCreated", 0)),
        successful=int(row.get("SuccessfulCall(C)", 0)),
        failed=int(row.get("FailedCall(C)", 0)),
        response_time_ms=parse_duration_ms(rtd) if rtd else None,
        raw=row,
    )


def prepare_workdir(workdir: Path, user: str, password: str, digit: str) -> Path:
    """Fill ``workdir`` with ``pcap/`` and the injection file; returns the injection file."""
    if digit not in _DIGIT_PCAPS:
        raise SippError(f"no RFC 2833 pcap for digit {digit!r}")
    pcap = workdir / "pcap"
    pcap.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PCAP_SOURCE / "g711a.pcap", pcap / "g711a.pcap")
    shutil.copyfile(PCAP_SOURCE / _DIGIT_PCAPS[digit], pcap / "dtmf.pcap")
    credentials = workdir / "callers.csv"
    fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        auth = f"[authentication username={user} password={password}]"
        out.write(f"SEQUENTIAL\n{user};{auth};\n")
    return credentials


def free_media_port(host: str = "127.0.0.1") -> int:
    """A base port with the 4 UDP ports sipp's media needs free right now."""
    starts = list(_MEDIA_PORTS)
    random.shuffle(starts)
    for start in starts[:200]:
        if all(_udp_free(host, port) for port in range(start, start + 4)):
            return start
    raise SippError("no free media ports for sipp")


async def run_sipp(
    host: str,
    port: int,
    *,
    user: str,
    password: str,
    workdir: Path,
    service: str = "100",
    calls: int = 1,
    rate: float = 1.0,
    max_concurrent: int | None = None,
    call_ms: int = 2000,
    digit: str = "1",
    scenario: Path = UAC_AUTH_PCAP_DTMF,
    seconds: float = 120.0,
    recv_timeout_ms: int = 15000,
) -> SippResult:
    """Run ``calls`` calls at ``rate`` per second to ``service`` at ``host:port``.

    ``call_ms`` is the pause after the digit before BYE; a call fails when an awaited message
    takes more than ``recv_timeout_ms``; ``seconds`` bounds the whole run (sipp is killed 15 s
    after it, raising :class:`SippError`).
    """
    if shutil.which("sipp") is None:
        raise SippError("sipp is not installed (Debian package sip-tester)")
    injection = prepare_workdir(workdir, user, password, digit)
    stat_file = workdir / "stats.csv"
    error_file = workdir / "errors.log"
    argv = [
        "sipp", f"{host}:{port}",
        "-sf", str(scenario),
        "-inf", str(injection),
        "-s", service,
        "-m", str(calls),
        "-r", str(rate),
        "-l", str(max_concurrent or max(1, calls)),
        "-d", str(call_ms),
        "-i", "127.0.0.1",
        "-p", str(_free_udp_port()),
        "-mi", "127.0.0.1",
        "-mp", str(free_media_port()),
        "-recv_timeout", str(recv_timeout_ms),
        "-timeout", f"{int(seconds)}s",
        "-trace_stat", "-stf", str(stat_file), "-fd", "1",
        "-trace_err", "-error_file", str(error_file),
        "-nostdin",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workdir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), seconds + 15)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SippError(f"sipp ran longer than {seconds + 15:.0f} s and was killed") from None
    returncode = process.returncode if process.returncode is not None else -1
    errors = _tail(error_file) or stderr.decode(errors="replace").strip()
    try:
        stats = parse_stat_csv(stat_file.read_text(encoding="latin-1"))
    except (OSError, SippError) as exc:
        raise SippError(f"sipp exited {returncode} without statistics ({exc}): {errors}") from exc
    return SippResult(returncode=returncode % 256, stats=stats, errors=errors)


def _free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="latin-1")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
