"""The faults, each injected once and waited out until the call center serves again.

Every fault returns a :class:`FaultWindow`: when it was injected, when everything was back
(daemon healthy, agents available) and what happened meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.pbx import BenchPbx, SippAgents
from callcontrol_testing.postgres import PrivatePostgres
from faults.supervisor import SupervisedDaemon


@dataclass
class Rig:
    """Everything a fault acts on."""

    pbx: BenchPbx
    agents: SippAgents
    daemon: SupervisedDaemon
    postgres: PrivatePostgres
    db_down_seconds: float = 10.0
    hang_seconds: float = 2.0


@dataclass
class FaultWindow:
    """One injected fault: epoch seconds it started and the service was back."""

    name: str
    started: float
    recovered: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Seconds until recovery and the details."""
        back = self.recovered - self.started if self.recovered is not None else None
        return {"name": self.name, "recovered_after_s": None if back is None else round(back, 3),
                **self.details}


async def kill_daemon(rig: Rig) -> FaultWindow:
    """SIGKILL the daemon; the supervisor restarts it and logs the agents in again."""
    seen = len(rig.daemon.restarts)
    window = FaultWindow("kill_daemon", time.time())
    rig.daemon.kill()
    restart = await rig.daemon.next_restart(seen)
    window.details["restart"] = restart.to_json()
    if restart.error is None:
        window.recovered = restart.ready
    return window


async def hang_then_kill_daemon(rig: Rig) -> FaultWindow:
    """SIGSTOP the daemon for ``rig.hang_seconds`` (calls keep entering its app, their
    StasisStart left unread), then SIGKILL it as a watchdog would; the supervisor restarts it."""
    seen = len(rig.daemon.restarts)
    window = FaultWindow("hang_then_kill_daemon", time.time())
    rig.daemon.freeze()
    await asyncio.sleep(rig.hang_seconds)
    rig.daemon.kill()
    restart = await rig.daemon.next_restart(seen)
    window.details["restart"] = restart.to_json()
    if restart.error is None:
        window.recovered = restart.ready
    return window


async def restart_asterisk(rig: Rig) -> FaultWindow:
    """Stop Asterisk and start it again; agents re-register when Asterisk forgot them."""
    window = FaultWindow("restart_asterisk", time.time())
    await rig.pbx.instance.restart()
    window.details["asterisk_back_s"] = round(time.time() - window.started, 3)
    registered = await rig.agents.registered()
    window.details["agents_registered_after_restart"] = registered
    if registered < len(rig.pbx.agents):
        await rig.agents.stop()
        await rig.agents.start()
    await _until_serving(rig, window)
    return window


async def stop_database(rig: Rig) -> FaultWindow:
    """Stop the PostgreSQL server for ``rig.db_down_seconds``, then start it again."""
    window = FaultWindow("stop_database", time.time())
    await asyncio.to_thread(rig.postgres.stop)
    await asyncio.sleep(max(0.0, window.started + rig.db_down_seconds - time.time()))
    status, body = await rig.daemon.health()
    window.details["health_while_down"] = {"http": status, "db": body.get("db")}
    await asyncio.to_thread(rig.postgres.start)
    window.details["db_down_s"] = round(time.time() - window.started, 3)
    await _until_serving(rig, window)
    return window


async def _until_serving(rig: Rig, window: FaultWindow, time_limit: float = 60.0) -> None:
    """Wait until /health is 200 and every agent is available again (logging them in if the
    daemon logged them out); set ``window.recovered``."""
    try:
        await rig.daemon.until_ready(time_limit)
    except (RuntimeError, TimeoutError) as exc:
        window.details["error"] = f"{type(exc).__name__}: {exc}"
        return
    window.recovered = time.time()


Fault = Callable[[Rig], Awaitable[FaultWindow]]
FAULTS: dict[str, Fault] = {
    "kill_daemon": kill_daemon,
    "restart_asterisk": restart_asterisk,
    "stop_database": stop_database,
    "hang_then_kill_daemon": hang_then_kill_daemon,
}
DEFAULT_FAULTS = ("kill_daemon", "restart_asterisk", "stop_database")
