"""The bench's Asterisk, its callcontrol config and its sipp agent headsets."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from callcontrol.config import Config, load_config
from callcontrol.pbx.instance import AsteriskInstance
from callcontrol.pbx.ports import allocate_ports, free_port
from callcontrol.pbx.provision import provision
from callcontrol.pbx.service import instance_dir, settings_from_config
from callcontrol.pbx.settings import SipAccount
from callcontrol_testing.sipp import free_media_port
from callcontrol_testing.testbed import generated_secret

BENCH = Path(__file__).resolve().parent
EXTENSION = "200"
QUEUE = "bench"


@dataclass
class BenchPbx:
    """A running bench Asterisk and the accounts that use it."""

    work: Path
    config_file: Path
    config: Config
    instance: AsteriskInstance
    agents: tuple[SipAccount, ...]
    caller: SipAccount  # callcontrol-inbound: the daemon's side
    dialplan_caller: SipAccount  # callcontrol-bench: the pure-dialplan side

    async def stop(self) -> None:
        """Stop Asterisk and delete its instance folder."""
        await self.instance.stop()
        self.instance.remove()


def write_bench_config(work: Path, name: str, agents: int, spool: Path) -> Path:
    """Write ``work/callcontrol.yaml``: free ports, SQLite, the bench flow, ``agents`` agents
    in queue ``bench`` (no wrap-up). Secrets go to ``work/secrets`` (mode 0600)."""
    folder = work / "secrets"
    folder.mkdir(parents=True, exist_ok=True)  # also makes work
    flows = work / "flows"
    flows.mkdir(exist_ok=True)
    shutil.copyfile(BENCH / "flows" / "bench.yaml", flows / "bench.yaml")
    # RTP+RTCP ports for every channel with media: a caller and its agent leg per call (the
    # default block of 200 holds 100 channels: past ~50 calls, agent legs failed at once)
    ports = allocate_ports(rtp_size=4 * agents + 200)
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


async def start_bench_pbx(work: Path, agents: int) -> BenchPbx:
    """Start the bench instance (unique name per process) with ``agents`` agent endpoints."""
    launcher = await provision()
    name = f"bench-{os.getpid()}"
    work = await asyncio.to_thread(work.absolute)
    spool = instance_dir(launcher, work, name) / "spool" / "recording"
    config_file = await asyncio.to_thread(write_bench_config, work, name, agents, spool)
    config = load_config(config_file, {})
    settings = settings_from_config(config)
    dialplan_caller = SipAccount("dpcaller", secrets.token_urlsafe(18), context="callcontrol-bench")
    settings = replace(settings, bench=True, callers=(*settings.callers, dialplan_caller))
    binds = {"prompts": work / "flows" / "prompts", "recordings": work / "recordings"}
    instance = AsteriskInstance(settings, launcher, instance_dir(launcher, work, name), binds)
    await instance.start()
    return BenchPbx(work, config_file, config, instance, settings.agents, settings.callers[0],
                    dialplan_caller)


class SippAgents:
    """One sipp process registering every agent headset and answering their calls."""

    def __init__(self, pbx: BenchPbx) -> None:
        self.pbx = pbx
        self.workdir = pbx.work / "agents"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, time_limit: float = 20.0) -> None:
        """Start sipp and wait until Asterisk lists every agent contact."""
        injection = await asyncio.to_thread(self._write_injection)
        count = len(self.pbx.agents)
        pbx = self.pbx.instance
        argv = [
            "sipp", f"{pbx.host}:{pbx.sip_port}",
            "-sf", str(BENCH / "sipp" / "agent_register.xml"),
            "-oocsf", str(BENCH / "sipp" / "agent_answer.xml"),
            "-inf", str(injection),
            "-m", str(count), "-l", str(count), "-r", "50",
            "-i", "127.0.0.1", "-p", str(free_port(udp_too=True)),
            "-mi", "127.0.0.1", "-mp", str(free_media_port()),
            "-trace_err", "-error_file", str(self.workdir / "errors.log"),
            "-nostdin",
        ]  # fmt: skip
        log = await asyncio.to_thread(open, self.workdir / "sipp.log", "ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv, cwd=self.workdir, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=log,
            )
        finally:
            log.close()
        deadline = time.monotonic() + time_limit
        while await self.registered() < count:
            if self._process.returncode is not None:
                raise RuntimeError(f"sipp agents exited {self._process.returncode}: "
                                   f"{(self.workdir / 'sipp.log').read_text()[-500:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {await self.registered()} of {count} agents registered")
            await asyncio.sleep(0.2)

    def _write_injection(self) -> Path:
        """The agents' user names and credentials for sipp (mode 0600, no secret in argv)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        injection = self.workdir / "agents.csv"
        fd = os.open(injection, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("SEQUENTIAL\n")
            for agent in self.pbx.agents:
                auth = f"[authentication username={agent.username} password={agent.password}]"
                out.write(f"{agent.username};{auth};\n")
        return injection

    async def registered(self) -> int:
        """How many agent headsets Asterisk has a contact for."""
        out = await self.pbx.instance.cli("pjsip show contacts")
        return sum(1 for line in out.splitlines() if line.strip().startswith("Contact:")
                   and "bench-a" in line)

    @property
    def pid(self) -> int | None:
        """PID of the agents' sipp."""
        return self._process.pid if self._process is not None else None

    async def stop(self) -> None:
        """End sipp."""
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
