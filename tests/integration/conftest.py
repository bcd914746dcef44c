"""Shared fixtures for integration tests: a real Asterisk 22 per test session.

``pbx`` (session scope) is a :class:`callcontrol.pbx.testbed.PbxTestbed`: one isolated Asterisk
on free ports, next to any ``make run`` instance, with passwords generated for this run::

    pbx.config          a full callcontrol Config pointing at this Asterisk (ARI/AMI secrets
                        as files, SQLite store, journal and recordings under pbx.work_dir);
                        derive variants with pbx.config.model_copy(update=...)
    pbx.ari_url         "http://127.0.0.1:PORT" (ARI under /ari); pbx.ari_user, pbx.ari_password
    pbx.app             the Stasis app name the dialplan hands calls to ("callcontrol")
    pbx.ami_port        AMI on 127.0.0.1; pbx.ami_user, pbx.ami_password
    pbx.sip_host, pbx.sip_port      where SIP peers send (UDP)
    pbx.caller          SipAccount(username, password) allowed to call into callcontrol-inbound
                        (any extension, e.g. 100, goes to Stasis(app, inbound, CALL-ID))
    pbx.agents          {"a1": SipAccount("agent-a1", ...), "a2": ...}: agent headsets
                        (context callcontrol-agents: *45, *46 and the hotline numbers)
    pbx.paths           PathMap: to_pbx(host_path) / to_host(pbx_path)
    pbx.instance        the AsteriskInstance: await pbx.instance.cli("..."), .restart(), .pid,
                        .spool_recording_dir (where ARI recordings land, host side)

The fixture is synchronous, so both sync and async tests (any loop scope) can use it. A test
that restarts or stops Asterisk must leave it running again (``await pbx.instance.start()``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from callcontrol.config import load_config
from callcontrol.pbx.ports import free_port
from callcontrol.pbx.testbed import PbxTestbed, start_testbed
from callcontrol.sipua.client import SipPeer
from callcontrol.testing.daemon import DaemonProcess, merge_config, write_config
from callcontrol.testing.postgres import PrivatePostgres, temp_database


@pytest.fixture(scope="session")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PbxTestbed]:
    """One isolated Asterisk for the test session (see the module docstring)."""
    work_dir = tmp_path_factory.mktemp("pbx")
    loop = asyncio.new_event_loop()
    try:
        testbed = loop.run_until_complete(start_testbed(work_dir, f"test-{os.getpid()}"))
        try:
            yield testbed
        finally:
            loop.run_until_complete(testbed.stop())
    finally:
        loop.close()


# -- the store of daemons under test: SQLite or PostgreSQL -----------------------------------
# The store follows CALLCONTROL_TEST_DB: "sqlite" (default, a file) or "postgres" (a database on
# a private PostgreSQL server started once per session). Tests marked ``postgres`` run in both
# stages of scripts/run-tests.sh; without PostgreSQL installed they fail, never skip.

PLATFORM_DB_KINDS = ("sqlite", "postgres")


def platform_db_kind() -> str:
    """The store the daemons under test run on: ``CALLCONTROL_TEST_DB`` (default ``sqlite``)."""
    kind = os.environ.get("CALLCONTROL_TEST_DB", "sqlite")
    if kind not in PLATFORM_DB_KINDS:
        raise pytest.UsageError(f"CALLCONTROL_TEST_DB={kind!r}: expected sqlite or postgres")
    return kind


@pytest.fixture(scope="session")
def platform_pg() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL server for the session (tests may stop and start it)."""
    with PrivatePostgres() as server:
        yield server


@asynccontextmanager
async def platform_pg_database(server: PrivatePostgres) -> AsyncIterator[str]:
    """A fresh, empty database on ``server`` (the daemon migrates it); dropped afterwards."""
    async with temp_database(server.admin_url, "cc_platform") as url:
        try:
            yield url
        finally:
            if not server.running:
                await asyncio.to_thread(server.start)


@asynccontextmanager
async def fresh_store(request: pytest.FixtureRequest, folder: Path) -> AsyncIterator[str]:
    """The URL of a fresh store of the kind :func:`platform_db_kind` names: ``folder/store.db``
    or a new database on ``platform_pg``."""
    if platform_db_kind() == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'store.db'}"
        return
    async with platform_pg_database(request.getfixturevalue("platform_pg")) as url:
        yield url


@pytest.fixture
async def platform_pg_url(platform_pg: PrivatePostgres) -> AsyncIterator[str]:
    """A fresh database on ``platform_pg`` whatever the test store (for database faults)."""
    async with platform_pg_database(platform_pg) as url:
        yield url


@pytest.fixture
async def platform_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The store URL of this test's daemons (see :func:`platform_db_kind`)."""
    async with fresh_store(request, tmp_path) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """The store URL of a daemon that serves a whole module (the ACD bed, the IVR scenarios)."""
    async with fresh_store(request, tmp_path_factory.mktemp("store")) as url:
        yield url


# -- platform tests: the daemon as a child process, its store, SIP callers ------------------
# Used by tests/integration/test_platform_*.py. Each test gets its own daemons
# (``platform_daemons``), store (``platform_db_url``), journal, PID file and HTTP port; the
# daemons run tests/integration/flows_platform (100: a long prompt, then a menu).

PLATFORM_FLOWS = Path(__file__).resolve().parent / "flows_platform"
PLATFORM_ROUTES = {"100": "platform_long"}


@dataclass
class PlatformDaemons:
    """Writes daemon configs for one test and runs daemons from them; stops them all at the end.

    ``config_file(name, update)`` derives ``name.yaml`` from the testbed's config (this test's
    store, journal, PID file, a free HTTP port, the platform flows); ``start`` runs a daemon on
    it, so a test can start a second daemon on the same config after killing the first.
    """

    pbx: PbxTestbed
    work_dir: Path
    db_url: str
    started: list[DaemonProcess] = field(default_factory=list)

    def config_file(self, name: str = "daemon", update: Mapping[str, Any] | None = None) -> Path:
        """Write (once per name) and return the config file ``name.yaml``."""
        target = self.work_dir / f"{name}.yaml"
        if target.exists():
            return target
        base: dict[str, Any] = {
            "database": {"url": self.db_url, "journal_dir": str(self.work_dir / "journal")},
            "http": {"port": free_port()},
            "flows": {"dir": str(PLATFORM_FLOWS), "routes": PLATFORM_ROUTES, "watch": False},
            "run": {"pid_file": str(self.work_dir / "run" / f"{name}.pid"),
                    "shutdown_grace": 2.0, "log_level": "info"},
        }
        return write_config(self.pbx.config_file, target, merge_config(base, update or {}))

    async def start(self, name: str = "daemon", update: Mapping[str, Any] | None = None,
                    timeout: float = 30.0) -> DaemonProcess:
        """Start a daemon on ``config_file(name, update)``; returns once ``/health`` is 200."""
        config = self.config_file(name, update)
        port = int(load_config(config).http.port)
        daemon = DaemonProcess(config, port, self.work_dir / f"{name}.log")
        self.started.append(daemon)
        await daemon.start(timeout)
        return daemon

    def store_url(self, name: str = "daemon") -> str:
        """The database URL of ``name``'s config, as the daemon resolves it."""
        return load_config(self.config_file(name)).database_url()

    async def close(self) -> None:
        """SIGTERM every daemon still running; each must exit 0 within 20 s (one that hangs is
        SIGKILLed). Raises AssertionError naming those that did not, so a daemon that cannot
        shut down cleanly fails the test instead of passing unnoticed."""
        failures = []
        for daemon in self.started:
            if daemon.proc is None or daemon.proc.returncode is not None:
                continue  # never started, or the test killed or stopped it
            try:
                code = await daemon.stop(timeout=20.0)
            except TimeoutError:
                failures.append(f"{daemon.config_file.name}: still running 20 s after SIGTERM")
                continue
            if code != 0:
                failures.append(f"{daemon.config_file.name}: exit {code} on SIGTERM\n"
                                f"{daemon.log_tail(20)}")
        assert not failures, "\n".join(failures)


@pytest.fixture
async def platform_daemons(
    pbx: PbxTestbed, tmp_path: Path, platform_db_url: str
) -> AsyncIterator[PlatformDaemons]:
    """This test's daemon launcher (see :class:`PlatformDaemons`)."""
    daemons = PlatformDaemons(pbx, tmp_path, platform_db_url)
    try:
        yield daemons
    finally:
        await daemons.close()


@pytest.fixture
async def platform_daemon(platform_daemons: PlatformDaemons) -> DaemonProcess:
    """A running daemon on this test's store, serving the platform flows."""
    return await platform_daemons.start()


@pytest.fixture
async def platform_caller(pbx: PbxTestbed, tmp_path: Path) -> AsyncIterator[SipPeer]:
    """A pjsua2 peer with the testbed's caller account (it may place several calls)."""
    async with SipPeer(name="platform-caller", log_path=tmp_path / "caller.log") as peer:
        await peer.use_account(pbx.caller.username, pbx.caller.password, pbx.sip_host,
                               pbx.sip_port)
        yield peer
