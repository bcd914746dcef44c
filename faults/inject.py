"""The faults, each injected once and waited out until the call center serves again.

Every fault returns a :class:`FaultWindow`: when it was injected, when everything was back
(daemon healthy, agents available) and what happened meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.pbx import BenchPbx, SippAgents
from callcontrol_testing.postgres import PrivatePostgres
from faults.diskfull import JournalDisk
from faults.proxy import LinkProxy
from faults.supervisor import SupervisedDaemon


@dataclass
class Rig:
    """Everything a fault acts on, and how long each fault lasts."""

    pbx: BenchPbx
    agents: SippAgents
    daemon: SupervisedDaemon
    postgres: PrivatePostgres
    proxies: dict[str, LinkProxy]  # "ari", "ami": the daemon reaches Asterisk through them
    journal_disk: JournalDisk
    db_down_seconds: float = 30.0
    hang_seconds: float = 2.0
    stop_seconds: float = 5.0
    cut_seconds: float = 10.0
    disk_full_seconds: float = 10.0


@dataclass
class FaultWindow:
    """One injected fault: epoch seconds it started, was lifted and the service was back."""

    name: str
    started: float
    recovered: float | None = None
    lifted: float | None = None  # the fault's cause was removed (process back, link restored)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Seconds until recovery (from the injection, and from the lifting: the time to
        reconnect) and the details."""
        back = self.recovered - self.started if self.recovered is not None else None
        lifted = self.lifted if self.lifted is not None else self.started
        reconnect = self.recovered - lifted if self.recovered is not None else None
        return {"name": self.name, "recovered_after_s": None if back is None else round(back, 3),
                "reconnect_s": None if reconnect is None else round(max(0.0, reconnect), 3),
                **self.details}


async def kill_daemon(rig: Rig) -> FaultWindow:
    """SIGKILL the daemon; the supervisor restarts it and logs the agents in again."""
    seen = len(rig.daemon.restarts)
    window = FaultWindow("kill_daemon", time.time())
    rig.daemon.kill()
    return await _restarted(rig, window, seen)


async def _restarted(rig: Rig, window: FaultWindow, seen: int) -> FaultWindow:
    """Wait for the supervisor's restart number ``seen``; the window ends when it serves."""
    restart = await rig.daemon.next_restart(seen)
    window.lifted = restart.respawned
    window.details["restart"] = restart.to_json()
    if restart.error is None:
        window.recovered = restart.ready
    return window


async def stop_daemon(rig: Rig) -> FaultWindow:
    """SIGSTOP the daemon for ``rig.stop_seconds``, then SIGCONT: the same process must
    catch up (calls entered its app meanwhile) and serve again."""
    window = FaultWindow("stop_daemon", time.time())
    pid = rig.daemon.pid
    rig.daemon.freeze()
    await asyncio.sleep(rig.stop_seconds)
    rig.daemon.thaw()
    window.lifted = time.time()
    await _until_serving(rig, window)
    window.details["same_process"] = rig.daemon.pid == pid
    return window


async def hang_then_kill_daemon(rig: Rig) -> FaultWindow:
    """SIGSTOP the daemon for ``rig.hang_seconds`` (calls keep entering its app, their
    StasisStart left unread), then SIGKILL it as a watchdog would; the supervisor restarts it."""
    seen = len(rig.daemon.restarts)
    window = FaultWindow("hang_then_kill_daemon", time.time())
    rig.daemon.freeze()
    await asyncio.sleep(rig.hang_seconds)
    rig.daemon.kill()
    return await _restarted(rig, window, seen)


async def restart_asterisk(rig: Rig) -> FaultWindow:
    """Stop Asterisk and start it again; agents re-register when Asterisk forgot them."""
    window = FaultWindow("restart_asterisk", time.time())
    await rig.pbx.instance.restart()
    return await _asterisk_back(rig, window)


async def kill_asterisk(rig: Rig) -> FaultWindow:
    """SIGKILL Asterisk (no goodbye to anyone), start it again at once."""
    window = FaultWindow("kill_asterisk", time.time())
    instance = rig.pbx.instance
    pid = instance.pid
    if pid is None:
        raise RuntimeError("Asterisk is not running")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while instance.pid is not None:  # asking reaps it (it is our child)
        if time.monotonic() > deadline:
            raise RuntimeError(f"Asterisk {pid} still alive 10 s after SIGKILL")
        await asyncio.sleep(0.05)
    window.details["asterisk_dead_s"] = round(time.time() - window.started, 3)
    await instance.start()
    return await _asterisk_back(rig, window)


async def _asterisk_back(rig: Rig, window: FaultWindow) -> FaultWindow:
    """Asterisk runs again: agents register again if it forgot them; wait until serving."""
    window.lifted = time.time()
    window.details["asterisk_back_s"] = round(window.lifted - window.started, 3)
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
    await _health_while(rig, window, window.started + rig.db_down_seconds, "db")
    await asyncio.to_thread(rig.postgres.start)
    window.lifted = time.time()
    window.details["db_down_s"] = round(window.lifted - window.started, 3)
    await _until_serving(rig, window)
    return window


async def cut_ari(rig: Rig) -> FaultWindow:
    """Cut the daemon's ARI link (WebSocket and HTTP) for ``rig.cut_seconds``."""
    return await _cut(rig, "ari")


async def cut_ami(rig: Rig) -> FaultWindow:
    """Cut the daemon's AMI link for ``rig.cut_seconds``."""
    return await _cut(rig, "ami")


async def _cut(rig: Rig, link: str) -> FaultWindow:
    """Reset the link's connections, refuse new ones for ``rig.cut_seconds``, restore."""
    window = FaultWindow(f"cut_{link}", time.time())
    proxy = rig.proxies[link]
    cut = await proxy.cut()
    window.details["connections_reset"] = cut["connections_reset"]
    await _health_while(rig, window, window.started + rig.cut_seconds, link)
    window.lifted = await proxy.restore()
    window.details["cut_s"] = round(window.lifted - window.started, 3)
    await _until_serving(rig, window)
    return window


async def journal_full(rig: Rig) -> FaultWindow:
    """Fill the journal's tmpfs for ``rig.disk_full_seconds``, then free it."""
    window = FaultWindow("journal_full", time.time())
    window.details.update(await rig.journal_disk.fill())
    await _health_while(rig, window, window.started + rig.disk_full_seconds, "journal")
    await rig.journal_disk.free()
    window.lifted = time.time()
    window.details["full_s"] = round(window.lifted - window.started, 3)
    await _until_serving(rig, window)
    _, body = await rig.daemon.health()
    window.details["journal_after"] = body.get("journal")
    return window


async def _health_while(rig: Rig, window: FaultWindow, until: float, link: str) -> None:
    """Poll ``/health`` until ``until`` (epoch); keep the last answer while the fault holds,
    and whether ``link`` was ever reported down."""
    seen_down = False
    status, body = 0, dict[str, Any]()
    while True:
        status, body = await rig.daemon.health()
        seen_down |= status == 503 and not body.get(link, {}).get("up", True)
        left = until - time.time()
        if left <= 0:
            break
        await asyncio.sleep(min(0.5, left))
    window.details["health_while"] = {"http": status, link: body.get(link),
                                      "reported_down": seen_down}


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
    "restart_asterisk": restart_asterisk,
    "kill_asterisk": kill_asterisk,
    "kill_daemon": kill_daemon,
    "stop_daemon": stop_daemon,
    "stop_database": stop_database,
    "cut_ari": cut_ari,
    "cut_ami": cut_ami,
    "journal_full": journal_full,
    "hang_then_kill_daemon": hang_then_kill_daemon,
}
DEFAULT_FAULTS = ("restart_asterisk", "kill_asterisk", "kill_daemon", "stop_daemon",
                  "stop_database", "cut_ari", "cut_ami", "journal_full")
