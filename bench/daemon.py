"""The callcontrol daemon under bench: started with the bench config, agents logged in."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bench.pbx import BenchPbx

PROJECT = Path(__file__).resolve().parents[1]


class BenchDaemon:
    """``python -m callcontrol run`` on the bench config (this checkout's code)."""

    def __init__(self, pbx: BenchPbx) -> None:
        self.pbx = pbx
        self.log_file = pbx.work / "daemon.log"
        self.base = f"http://127.0.0.1:{pbx.config.http.port}"
        self._process: asyncio.subprocess.Process | None = None
        self._env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        self._env = {k: v for k, v in self._env.items() if not k.startswith("CALLCONTROL__")}

    @property
    def pid(self) -> int | None:
        """The daemon's PID."""
        return self._process.pid if self._process is not None else None

    async def start(self, time_limit: float = 30.0) -> None:
        """Migrate the database, start the daemon, wait for /health 200, log every agent in."""
        config = str(self.pbx.config_file)
        await self._cli("db", "upgrade")
        log = await asyncio.to_thread(open, self.log_file, "ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "callcontrol", "--config", config, "run",
                env=self._env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )
        finally:
            log.close()
        token = await self._cli("tokens", "create", "--role", "admin", "--name", "bench")
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + time_limit
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            await self._wait_health(http, deadline)
            for agent in self.pbx.config.agents:
                async with http.post(f"{self.base}/api/agents/{agent.id}/login",
                                     headers=headers) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"login {agent.id}: HTTP {resp.status} "
                                           f"{await resp.text()}")
            await self._wait_agents(http, headers, deadline)

    async def _cli(self, *args: str) -> str:
        """Run one ``callcontrol`` command on the bench config; return its output."""
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "callcontrol", "--config", str(self.pbx.config_file), *args],
            env=self._env, check=True, capture_output=True, text=True, timeout=60,
        )
        return done.stdout.strip()

    async def _wait_health(self, http: aiohttp.ClientSession, deadline: float) -> None:
        last = "no answer"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.returncode is not None:
                raise RuntimeError(f"the daemon exited {self._process.returncode}: "
                                   f"{self.log_tail()}")
            try:
                async with http.get(f"{self.base}/health") as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}: {await resp.text()}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = type(exc).__name__
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the daemon did not become healthy: {last}; {self.log_tail()}")

    async def _wait_agents(self, http: aiohttp.ClientSession, headers: dict[str, str],
                           deadline: float) -> None:
        """Wait until every agent is available (logged in and its headset reachable)."""
        states: dict[str, int] = {}
        while time.monotonic() < deadline:
            async with http.get(f"{self.base}/api/agents", headers=headers) as resp:
                agents = await resp.json()
            states = {}
            for agent in agents:
                state = str(agent.get("state"))
                states[state] = states.get(state, 0) + 1
            if states.get("available", 0) == len(self.pbx.config.agents):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"agents not all available: {states}")

    def log_tail(self, lines: int = 15) -> str:
        """The end of the daemon's log."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    async def stop(self, time_limit: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``time_limit``."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), time_limit)
        except TimeoutError:
            process.kill()
            await process.wait()
