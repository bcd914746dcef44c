"""Wiring and lifecycle of the daemon.

    start:  store (journal replay) -> flows -> ACD (agents restored) -> ARI (+ resync on every
            connect: adopts queue calls) -> AMI
            -> HTTP API -> PID file
    run:    ARI events -> the ARI adapter (translated) -> the call router: the owner's inbox,
            else a new channel for the CallManager
    stop:   (SIGTERM) stop taking calls -> drain (grace) -> hand the rest to the dialplan
            fallback -> close links -> flush the store -> exit 0

Long-lived tasks are owned here and cancelled on shutdown; nothing is fire-and-forget.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.connect import serve_in_queue
from callcontrol.api.auth import TokenStore
from callcontrol.api.facade import ApiFacade
from callcontrol.api.server import build_app
from callcontrol.ari.adapter import IGNORED_EVENTS
from callcontrol.calls.dial import DialStep
from callcontrol.calls.manager import CallManager
from callcontrol.calls.router import EventRouter
from callcontrol.config import Config, resolve_secret
from callcontrol.fallback_ledger import STATE_NAME as LEDGER_STATE_NAME
from callcontrol.fallback_ledger import LedgerFollower
from callcontrol.logging import configure_logging, get_logger
from callcontrol.pbx.agents_conf import AgentsInclude
from callcontrol.pbx.paths import PathMap
from callcontrol.pbx.settings import SipAccount
from callcontrol.recording.paths import RecordingPaths
from callcontrol.recovery import Recovery

log = get_logger("callcontrol.app")

# The AMI events the daemon reads (ContactStatus, for the ACD) are all of class ``system``:
# the ``call`` class (several events per channel step) would only cost parsing.
AMI_EVENT_CLASSES = "system"


class App:
    """The daemon: owns every long-lived task and link."""

    def __init__(
        self, config: Config, paths: PathMap, stock_sounds: dict[str, set[str]],
        engine: AsyncEngine, pbx_etc_dir: Path, spool_recording_dir: Path,
    ) -> None:
        from callcontrol.acd.directory import AgentDirectory
        from callcontrol.acd.service import AcdService
        from callcontrol.ami.client import AmiClient
        from callcontrol.ami.headsets import AmiHeadsets
        from callcontrol.ami.mixmonitor import AmiMixMonitor
        from callcontrol.ari.adapter import AriTelephony
        from callcontrol.ari.client import AriClient
        from callcontrol.flows.runtime import FlowService
        from callcontrol.recording.runtime import RecordingService
        from callcontrol.store.writer import StoreWriter

        self.config = config
        self.router = EventRouter()
        self.engine = engine
        self.store = StoreWriter.from_config(
            engine, config.database, config.path(config.database.journal_dir)
        )
        ari = config.asterisk.ari
        self.ari = AriClient(
            ari.url, ari.user, resolve_secret(config, ari.password).get_secret_value(), ari.app,
            request_timeout=ari.request_timeout, reconnect_max_delay=ari.reconnect_max_delay,
            ignored_events=IGNORED_EVENTS,
        )
        self.telephony = AriTelephony(self.ari)
        ami = config.asterisk.ami
        self.ami = AmiClient(
            ami.host, ami.port, ami.user, resolve_secret(config, ami.password).get_secret_value(),
            action_timeout=ami.action_timeout, ping_interval=ami.ping_interval,
            events=AMI_EVENT_CLASSES,
        )
        self.paths = paths
        self.flows = FlowService(config, to_pbx=paths.to_pbx, stock_sounds=stock_sounds)
        self.headset_status = AmiHeadsets(self.ami)
        self.recordings = RecordingService(
            config.recording, RecordingPaths(config.path(config.asterisk.recordings_dir), paths),
            AmiMixMonitor(self.ami), self.store, spool_recording_dir)
        self.acd = AcdService(config, self.telephony, self.store, self.router,
                              lambda *call: self.calls.start_service(*call),
                              contacts=self.headset_status)
        self.calls = CallManager(
            self.telephony, self.store, self.router, self.flows.run_call,
            call_max_seconds=config.run.call_max_seconds,
            queue_handler=partial(serve_in_queue, acd=self.acd.core),
            dial_handler=DialStep(self.acd.roster, config),
            feature_handler=self.acd.feature_codes.run,
            recovering=lambda: self.recovery.busy,
            recorder=self.recordings.for_call,
        )
        self.headsets = AgentsInclude(pbx_etc_dir, self._reload_pjsip)
        self.directory = AgentDirectory(config, engine, self.store, self.acd.roster,
                                        self._apply_headsets)
        self.fallback_ledger = LedgerFollower(
            telephony=self.telephony, to_host=paths.to_host, engine=engine, store=self.store,
            state_file=config.path(config.database.journal_dir) / LEDGER_STATE_NAME,
        )
        self.recovery = Recovery(
            telephony=self.telephony, calls=self.calls, router=self.router, engine=engine,
            log=self.store, acd=self.acd, ledger=self.fallback_ledger,
        )
        self.api = ApiFacade(
            config=config, engine=engine, store=self.store,
            links={"ari": self.ari.link, "ami": self.ami.link}, flows=self.flows,
            acd=self.acd, directory=self.directory, calls=self.calls,
            recordings=RecordingPaths(config.path(config.asterisk.recordings_dir), paths),
        )
        self.tokens = TokenStore(config.path(config.http.tokens_file))
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.stopping = asyncio.Event()

    @classmethod
    async def create(cls, config: Config) -> App:
        """Build the app for ``config``: finds how Asterisk sees our files and its sounds."""
        from callcontrol.flows.check import load_stock_sounds
        from callcontrol.pbx.service import instance_for_config
        from callcontrol.store.db import create_engine
        from callcontrol.store.migrations import upgrade

        instance = await instance_for_config(config, config.path(Path("var")))
        root = instance.launcher.root
        sounds = load_stock_sounds((root or Path("/")) / "usr/share/asterisk/sounds", root)
        url = config.database_url()
        await upgrade(url)
        etc_dir = instance.paths.to_host(instance.dirs.etc)
        spool = config.asterisk.spool_recording_dir
        spool_dir = config.path(spool) if spool is not None else instance.spool_recording_dir
        return cls(config, instance.paths, sounds, create_engine(url), etc_dir, spool_dir)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every part; returns once the daemon serves."""
        self.store.start()
        try:  # the journal's replay reaches the database before recovery reads open calls
            async with asyncio.timeout(10):
                await self.store.flush()
        except TimeoutError:
            log.warning("store_not_flushed_at_start", pending=self.store.pending)
        await self.recordings.recover(self.engine)  # what a crash cut, before new calls
        self._tasks.append(asyncio.create_task(self.recordings.purge_forever(self.engine),
                                               name="recordings-purge"))
        await self.flows.start()
        await self.acd.start()
        await self.directory.start()
        await self.acd.restore_agents(self.engine)  # before recovery adopts their calls
        await self.acd.restore_callbacks(self.engine, ready=self.ari.wait_connected)
        self.ari.on_connected(self.recovery.resync)
        self.telephony.on_event(self.router.deliver)
        await self.ari.start()
        self.headset_status.on_change(self.acd.roster.on_headset)
        self.ami.on_connected(self.acd.roster.sync_headsets)
        self.ami.on_connected(self.directory.sync_pbx)
        await self.ami.start()
        api = build_app(self.api, self.tokens, outbound=self.config.security.outbound_allow,
                        demo_crm=self.config.http.demo_crm)
        self._runner = web.AppRunner(api, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        await site.start()
        self._write_pid()
        log.info("daemon_started", http=f"{self.config.http.host}:{self.config.http.port}",
                 flows=self.flows.live_names())

    async def stop(self) -> None:
        """Graceful stop: drain calls, close links, flush the store."""
        log.info("daemon_stopping", calls=self.calls.active)
        await self.calls.drain(self.config.run.shutdown_grace)
        await self.recordings.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self.fallback_ledger.close()
        await self.acd.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.ami.close()
        await self.ari.close()
        await self.flows.close()
        await self.store.close(grace=self.config.run.shutdown_grace)
        await self.engine.dispose()
        self._remove_pid()
        log.info("daemon_stopped")

    def _write_pid(self) -> None:
        path = self.config.path(self.config.run.pid_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{os.getpid()}\n")

    def _remove_pid(self) -> None:
        path = self.config.path(self.config.run.pid_file)
        try:
            if path.read_text().strip() == str(os.getpid()):
                path.unlink()
        except OSError:
            pass

    # -- agent headsets added through the API --------------------------------------------------
    async def _reload_pjsip(self) -> None:
        await self.ami.action({"Action": "Reload", "Module": "res_pjsip.so"})

    async def _apply_headsets(self, accounts: Mapping[str, str]) -> None:
        await self.headsets.apply([SipAccount(e, p) for e, p in accounts.items()])


async def serve(config: Config) -> None:
    """Run the daemon until SIGTERM/SIGINT."""
    app = await App.create(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.stopping.set)
    try:
        await app.start()
        await app.stopping.wait()
    finally:
        await app.stop()


def run_daemon(config: Config) -> int:
    """``callcontrol run``: configure logging, run the daemon, exit 0 after a clean stop."""
    configure_logging(config.run.log_level)
    asyncio.run(serve(config))
    return 0
