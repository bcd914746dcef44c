"""The daemon under fault injection, supervised by the harness itself.

Like ``scripts/supervise.sh``, :class:`SupervisedDaemon` starts ``callcontrol run`` again as
soon as it dies (``restart_delay`` after the death); then, like the agents would at their
desks, it logs every agent in again (agent logins live in the daemon's memory). Each restart is
kept in :attr:`SupervisedDaemon.restarts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.daemon import BenchDaemon
from bench.pbx import BenchPbx

OUT_OF_SERVICE = frozenset({"logged_out", "unreachable"})


@dataclass
class Restart:
    """One death of the daemon and its restart (epoch seconds)."""

    died: float
    exit_code: int | None
    respawned: float
    ready: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Seconds from the death to the new process and to the daemon serving again."""
        return {
            "exit_code": self.exit_code,
            "respawn_s": round(self.respawned - self.died, 3),
            "ready_s": round(self.ready - self.died, 3) if self.ready is not None else None,
            "error": self.error,
        }


class SupervisedDaemon(BenchDaemon):
    """The bench daemon, restarted by the harness whenever it dies."""

    def __init__(self, pbx: BenchPbx, restart_delay: float = 0.2) -> None:
        super().__init__(pbx)
        self.restart_delay = restart_delay
        self.restarts: list[Restart] = []
        self._token = ""
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None
        self._restarted = asyncio.Condition()

    @property
    def headers(self) -> dict[str, str]:
        """Authorization of the harness's admin token."""
        return {"Authorization": f"Bearer {self._token}"}

    async def start(self, time_limit: float = 60.0) -> None:
        """Migrate, create the harness's token, start the daemon, log agents in, supervise."""
        await self._cli("db", "upgrade")
        self._token = await self._cli("tokens", "create", "--role", "admin", "--name", "faults")
        await self._spawn()
        await self.until_ready(time_limit)
        self._watch = asyncio.create_task(self._supervise(), name="faults-supervisor")

    def kill(self) -> None:
        """SIGKILL the daemon (the supervisor starts it again)."""
        if self._process is None or self._process.returncode is not None:
            raise RuntimeError("the daemon is not running")
        os.kill(self._process.pid, signal.SIGKILL)

    def freeze(self) -> None:
        """SIGSTOP the daemon: it reads nothing until killed (a hung daemon)."""
        if self._process is None or self._process.returncode is not None:
            raise RuntimeError("the daemon is not running")
        os.kill(self._process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen daemon."""
        if self._process is None or self._process.returncode is not None:
            raise RuntimeError("the daemon is not running")
        os.kill(self._process.pid, signal.SIGCONT)

    async def next_restart(self, after: int, time_limit: float = 60.0) -> Restart:
        """Wait until restart number ``after`` (0-based) has finished (ready or failed)."""
        async def done() -> None:
            async with self._restarted:
                await self._restarted.wait_for(
                    lambda: len(self.restarts) > after
                    and (self.restarts[after].ready or self.restarts[after].error) is not None)
        await asyncio.wait_for(done(), time_limit)
        return self.restarts[after]

    async def until_ready(self, time_limit: float = 60.0) -> None:
        """Wait for /health 200, log in every logged-out agent, wait until none is out of
        service (logged out or unreachable)."""
        deadline = time.monotonic() + time_limit
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            await self._wait_health(http, deadline)
            async with http.get(f"{self.base}/api/agents", headers=self.headers) as resp:
                agents = await resp.json()
            for agent in agents:
                if agent.get("state") != "logged_out":
                    continue
                url = f"{self.base}/api/agents/{agent['id']}/login"
                async with http.post(url, headers=self.headers) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"login {agent['id']}: HTTP {resp.status} "
                                           f"{await resp.text()}")
            await self._wait_agents_back(http, deadline)

    async def _wait_agents_back(self, http: aiohttp.ClientSession, deadline: float) -> None:
        """Wait until no agent is logged out or unreachable (busy ones are fine: the stream
        goes on during recovery)."""
        states: dict[str, int] = {}
        while time.monotonic() < deadline:
            async with http.get(f"{self.base}/api/agents", headers=self.headers) as resp:
                agents = await resp.json()
            states = {}
            for agent in agents:
                state = str(agent.get("state"))
                states[state] = states.get(state, 0) + 1
            if not set(states) & OUT_OF_SERVICE:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"agents not all back in service: {states}")

    async def health(self) -> tuple[int, dict[str, Any]]:
        """``/health``: HTTP status and body (status 0 when the daemon does not answer)."""
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http, \
                    http.get(f"{self.base}/health") as resp:
                return resp.status, await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return 0, {}

    async def stop(self, time_limit: float = 20.0) -> None:
        """Stop supervising, then stop the daemon (SIGTERM, SIGKILL after ``time_limit``)."""
        self._stopping = True
        await super().stop(time_limit)
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def _spawn(self) -> None:
        log = await asyncio.to_thread(open, self.log_file, "ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "callcontrol", "--config", str(self.pbx.config_file),
                "run", env=self._env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )
        finally:
            log.close()

    async def _supervise(self) -> None:
        while True:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            died = time.time()
            await asyncio.sleep(self.restart_delay)
            await self._spawn()
            restart = Restart(died, code, time.time())
            self.restarts.append(restart)
            try:
                await self.until_ready()
                restart.ready = time.time()
            except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                restart.error = f"{type(exc).__name__}: {exc}"
            async with self._restarted:
                self._restarted.notify_all()
