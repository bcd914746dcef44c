"""The bench's Asterisk, its callcontrol config and its sipp agent headsets.

Why the bench is shaped this way (each point was a cause of failed calls before):

- **Agents are sipp UAS processes**, ``AGENTS_PER_UAS`` agents per process, so no single sipp
  serves every headset. Each agent registers once, from its UAS's port, before the UAS starts
  (the daemon learns a headset's reachability from AMI's contact list, which lists registered
  contacts only); nothing re-registers or qualifies during the run.
- **One RTP range wide enough for the load**: an instance of the tests gets 200 RTP ports
  (100 media streams); a bench step at 20 calls/s holds ~400 streams (caller + agent legs).
- **One codec end to end** (G.711 a-law: the caller's and the agents' only offer), so Asterisk
  bridges the two legs natively; only the prompt (GSM) is transcoded.
- **Callers wait for the agent's BYE** (the agent hangs up after its talk time), so a call
  that never reached an agent fails on the caller's receive timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

from callcontrol.config import Config, load_config
from callcontrol.pbx.instance import AsteriskInstance
from callcontrol.pbx.ports import allocate_ports, free_port
from callcontrol.pbx.provision import provision
from callcontrol.pbx.service import instance_dir, settings_from_config
from callcontrol.pbx.settings import SipAccount
from callcontrol_testing.sipp import PCAP_SOURCE, free_media_port
from callcontrol_testing.testbed import generated_secret

BENCH = Path(__file__).resolve().parent
EXTENSION = "200"
QUEUE = "bench"
AGENTS_PER_UAS = 100
RTP_PORTS = 8000  # 4000 media streams: ~45 calls/s of 10 s calls, two legs each


@dataclass(frozen=True)
class AgentBlock:
    """One sipp UAS: the agents whose static contact is its port."""

    port: int
    media_port: int
    agents: tuple[SipAccount, ...]


@dataclass
class BenchPbx:
    """A running bench Asterisk and the accounts that use it."""

    work: Path
    config_file: Path
    config: Config
    instance: AsteriskInstance
    blocks: tuple[AgentBlock, ...]
    caller: SipAccount  # callcontrol-inbound: the daemon's side
    dialplan_caller: SipAccount  # callcontrol-bench: the pure-dialplan side

    @property
    def agents(self) -> tuple[SipAccount, ...]:
        """Every agent headset."""
        return tuple(a for block in self.blocks for a in block.agents)

    async def stop(self) -> None:
        """Stop Asterisk and delete its instance folder."""
        await self.instance.stop()
        self.instance.remove()


def write_bench_config(work: Path, name: str, agents: int, spool: Path) -> Path:
    """Write ``work/callcontrol.yaml``: free ports (a wide RTP range), SQLite, the bench flow,
    ``agents`` agents in queue ``bench`` (no wrap-up). Secrets go to ``work/secrets``."""
    folder = work / "secrets"
    folder.mkdir(parents=True, exist_ok=True)  # also makes work
    flows = work / "flows"
    flows.mkdir(exist_ok=True)
    shutil.copyfile(BENCH / "flows" / "bench.yaml", flows / "bench.yaml")
    ports = allocate_ports(rtp_size=RTP_PORTS)
    data = {
        "base_dir": str(work),
        "asterisk": {
            "instance_name": name,
            "sip_port": ports.sip,
            "rtp_start": ports.rtp_start,
            "rtp_end": ports.rtp_end,
            "ari": {
                "url": f"http://127.0.0.1:{ports.http}",
                "password": generated_secret(folder, "ari"),
            },
            "ami": {"port": ports.ami, "password": generated_secret(folder, "ami")},
            "recordings_dir": str(work / "recordings"),
            "spool_recording_dir": str(spool),
        },
        "database": {
            "url": f"sqlite+aiosqlite:///{work / 'callcontrol.db'}",
            "journal_dir": str(work / "journal"),
        },
        "http": {"port": free_port(), "tokens_file": str(work / "tokens.json")},
        "flows": {"dir": str(flows), "routes": {EXTENSION: "bench"}, "watch": False},
        "agents": [
            {
                "id": f"a{i:03d}",
                "name": f"Bench agent {i}",
                "endpoint": f"bench-a{i:03d}",
                "password": generated_secret(folder, f"a{i:03d}"),
                "queues": [QUEUE],
            }
            for i in range(1, agents + 1)
        ],
        "queues": {QUEUE: {"strategy": "longest_idle", "ring_timeout": 15, "wrap_up": 0,
                           "max_no_answer": 1000}},
        "callers": [{"id": "benchcaller", "password": generated_secret(folder, "benchcaller")}],
        "run": {"pid_file": str(work / "run" / "callcontrol.pid"), "log_level": "warning"},
    }
    path = work / "callcontrol.yaml"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def agent_blocks(agents: tuple[SipAccount, ...], per_uas: int) -> tuple[AgentBlock, ...]:
    """Split the agents over UAS processes (on ports free now)."""
    blocks: list[AgentBlock] = []
    for start in range(0, len(agents), per_uas):
        media = free_media_port()  # free now, and apart from the blocks already picked
        while any(abs(media - block.media_port) < 4 for block in blocks):
            media = free_media_port()
        blocks.append(AgentBlock(free_port(udp_too=True), media, agents[start:start + per_uas]))
    return tuple(blocks)


def raise_fd_limit() -> None:
    """Soft limit of open files up to the hard one: Asterisk and sipp inherit it (a step at
    30 calls/s holds ~600 channels, each with RTP sockets)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def start_bench_pbx(work: Path, agents: int,
                          per_uas: int = AGENTS_PER_UAS) -> BenchPbx:
    """Start the bench instance (unique name per process) with ``agents`` agent endpoints."""
    raise_fd_limit()
    launcher = await provision()
    name = f"bench-{os.getpid()}"
    work = await asyncio.to_thread(work.absolute)
    spool = instance_dir(launcher, work, name) / "spool" / "recording"
    config_file = await asyncio.to_thread(write_bench_config, work, name, agents, spool)
    config = load_config(config_file, {})
    settings = settings_from_config(config)
    blocks = agent_blocks(settings.agents, per_uas)
    dialplan_caller = SipAccount("dpcaller", secrets.token_urlsafe(18), context="callcontrol-bench")
    settings = replace(settings, bench=True, callers=(*settings.callers, dialplan_caller))
    binds = {"prompts": work / "flows" / "prompts", "recordings": work / "recordings"}
    instance = AsteriskInstance(settings, launcher, instance_dir(launcher, work, name), binds)
    await instance.start()
    return BenchPbx(work, config_file, config, instance, blocks, settings.callers[0],
                    dialplan_caller)


class SippAgents:
    """The agent headsets: one sipp UAS per :class:`AgentBlock`; each answers at once, talks
    ``talk_seconds`` and hangs up (or takes the caller side's BYE when that comes first)."""

    def __init__(self, pbx: BenchPbx, talk_seconds: float = 3600.0) -> None:
        self.pbx = pbx
        self.talk_ms = int(talk_seconds * 1000)
        self.workdir = pbx.work / "agents"
        self._processes: list[asyncio.subprocess.Process] = []

    @property
    def pids(self) -> list[int]:
        """PIDs of the running UAS processes."""
        return [p.pid for p in self._processes if p.returncode is None]

    async def start(self, time_limit: float = 20.0) -> None:
        """Register each block's agents from its port, start its UAS there, and wait until
        each UAS listens and Asterisk lists every agent's contact."""
        await asyncio.to_thread(self._prepare)
        for index, block in enumerate(self.pbx.blocks):
            await self._register(index, block)
            argv = [
                "sipp", "-sf", str(self.workdir / "agent.xml"),
                "-i", "127.0.0.1", "-p", str(block.port),
                "-mi", "127.0.0.1", "-mp", str(block.media_port), "-max_socket", "4096",
                "-trace_stat", "-fd", "5", "-stf", str(self.workdir / f"uas{index}.csv"),
                "-trace_err", "-error_file", str(self.workdir / f"uas{index}_errors.log"),
                "-nostdin",
            ]  # fmt: skip
            log = await asyncio.to_thread(open, self.workdir / f"uas{index}.log", "ab")
            try:
                self._processes.append(await asyncio.create_subprocess_exec(
                    *argv, cwd=self.workdir, stdin=asyncio.subprocess.DEVNULL,
                    stdout=log, stderr=log,
                ))
            finally:
                log.close()
        deadline = time.monotonic() + time_limit
        for process, block in zip(self._processes, self.pbx.blocks, strict=True):
            while not await asyncio.to_thread(_udp_bound, block.port):
                if process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"agent UAS on port {block.port} did not start "
                                       f"(exit {process.returncode})")
                await asyncio.sleep(0.1)
        count = len(self.pbx.agents)
        while (listed := await self.registered()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {listed} of {count} agents registered")
            await asyncio.sleep(0.2)

    async def _register(self, index: int, block: AgentBlock) -> None:
        """One REGISTER per agent of ``block``, sent from the block's port (sipp then exits)."""
        injection = self.workdir / f"register{index}.csv"
        await asyncio.to_thread(_write_credentials, injection, block.agents)
        host, port = self.pbx.instance.host, self.pbx.instance.sip_port
        count = str(len(block.agents))
        process = await asyncio.create_subprocess_exec(
            "sipp", f"{host}:{port}", "-sf", str(BENCH / "sipp" / "agent_register.xml"),
            "-inf", str(injection), "-m", count, "-l", count, "-r", "200",
            "-i", "127.0.0.1", "-p", str(block.port), "-recv_timeout", "5000",
            "-trace_err", "-error_file", str(self.workdir / f"register{index}_errors.log"),
            "-nostdin", cwd=self.workdir, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        if process.returncode != 0:
            raise RuntimeError(f"agents of port {block.port} did not register (sipp exit "
                               f"{process.returncode}): {stderr.decode(errors='replace')[-300:]}")
    def _prepare(self) -> None:
        pcap = self.workdir / "pcap"
        pcap.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PCAP_SOURCE / "g711a.pcap", pcap / "g711a.pcap")
        scenario = (BENCH / "sipp" / "agent.xml").read_text()
        (self.workdir / "agent.xml").write_text(scenario.replace("@TALK_MS@", str(self.talk_ms)))

    async def registered(self) -> int:
        """How many agent headsets Asterisk lists a contact for (static contacts count)."""
        out = await self.pbx.instance.cli("pjsip show contacts")
        return sum(1 for line in out.splitlines()
                   if line.strip().startswith("Contact:") and "bench-a" in line)

    async def stop(self) -> None:
        """End every UAS."""
        for process in self._processes:
            if process.returncode is None:
                process.terminate()
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._processes = []


def _write_credentials(path: Path, agents: tuple[SipAccount, ...]) -> None:
    """The agents' user names and credentials for sipp (mode 0600, no secret in argv)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("SEQUENTIAL\n")
        for agent in agents:
            auth = f"[authentication username={agent.username} password={agent.password}]"
            out.write(f"{agent.username};{auth};\n")


def _udp_bound(port: int) -> bool:
    """True once something holds UDP ``port`` on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
