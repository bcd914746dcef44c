"""Wiring and lifecycle of the daemon.

    start:  store (journal replay) -> flows -> ACD (agents restored) -> ARI (+ resync on every
            connect: adopts queue calls) -> AMI
            -> HTTP API -> PID file
    run:    ARI events -> translate -> new inbound channel: CallManager; else the owner's inbox
    stop:   (SIGTERM) stop taking calls -> drain (grace) -> hand the rest to the dialplan
            fallback -> close links -> flush the store -> exit 0

Long-lived tasks are owned here and cancelled on shutdown; nothing is fire-and-forget.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.agents import AgentStateError
from callcontrol.acd.directory import NewAgent
from callcontrol.acd.reports import queue_period_stats
from callcontrol.api.auth import TokenStore
from callcontrol.api.server import build_app
from callcontrol.ari.adapter import IGNORED_EVENTS, translate
from callcontrol.ari.protocol import AriEvent
from callcontrol.calls import CallManager
from callcontrol.config import Config, resolve_secret
from callcontrol.errors import ApiError
from callcontrol.events_router import EventRouter
from callcontrol.fallback_ledger import LedgerFollower
from callcontrol.logging import configure_logging, get_logger
from callcontrol.pbx.agents_conf import AgentsInclude
from callcontrol.pbx.paths import PathMap
from callcontrol.pbx.settings import SipAccount
from callcontrol.recovery import Recovery
from callcontrol.store.queries import (
    call_timeline,
    call_to_json,
    event_to_json,
    get_call,
    recent_calls,
)
from callcontrol.telephony import ChannelEntered, TelephonyEvent

log = get_logger("callcontrol.app")

DEMO_CRM: dict[str, dict[str, Any]] = {
    "123456": {"account": "123456", "name": "Mario Rossi", "tier": "vip", "balance": 12.5},
    "654321": {"account": "654321", "name": "Anna Bianchi", "tier": "standard",
               "balance": 0.0},
}


# The AMI events the daemon reads (ContactStatus, for the ACD) are all of class ``system``:
# the ``call`` class (several events per channel step) would only cost parsing.
AMI_EVENT_CLASSES = "system"


class App:
    """The daemon: owns every long-lived task and link."""

    def __init__(
        self, config: Config, paths: PathMap, stock_sounds: dict[str, set[str]],
        engine: AsyncEngine, pbx_etc_dir: Path,
    ) -> None:
        from callcontrol.acd.directory import AgentDirectory
        from callcontrol.acd.service import build_acd
        from callcontrol.ami.client import AmiClient
        from callcontrol.ari.adapter import AriTelephony
        from callcontrol.ari.client import AriClient
        from callcontrol.flows.runtime import FlowService
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
        self.acd = build_acd(config, self.telephony, self.store, self.router,
                             contacts=self.ami)
        self.calls = CallManager(
            self.telephony, self.store, self.router, self.flows.run_call,
            call_max_seconds=config.run.call_max_seconds,
            queue_handler=self.acd.queue_handler, dial_handler=self.acd.dial_handler,
        )
        self.headsets = AgentsInclude(pbx_etc_dir, self._reload_pjsip)
        self.directory = AgentDirectory(config, engine, self.acd, self._apply_headsets)
        self.recovery = Recovery(self)
        self.fallback_ledger = LedgerFollower(self)
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
        return cls(config, instance.paths, sounds, create_engine(url), etc_dir)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every part; returns once the daemon serves."""
        self.store.start()
        try:  # the journal's replay reaches the database before recovery reads open calls
            async with asyncio.timeout(10):
                await self.store.flush()
        except TimeoutError:
            log.warning("store_not_flushed_at_start", pending=self.store.pending)
        await self.flows.start()
        await self.acd.start()
        await self.directory.start()
        await self.acd.restore_agents(self.engine)  # before recovery adopts their calls
        await self.acd.restore_callbacks(self.engine, ready=self.ari.wait_connected)
        self.ari.on_connected(self.recovery.resync)
        self.ari.on_event(self._on_ari_event)
        await self.ari.start()
        self.ami.on_event(self.acd.on_ami_event)
        self.ami.on_connected(self.acd.on_ami_connected)
        self.ami.on_connected(self.directory.sync_pbx)
        await self.ami.start()
        api = build_app(self, self.tokens, outbound=self.config.security.outbound_allow,
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

    # -- events -----------------------------------------------------------------------------
    async def _on_ari_event(self, event: AriEvent) -> None:
        for translated in translate(event):
            self.dispatch(translated)

    def dispatch(self, event: TelephonyEvent) -> None:
        """Route one telephony event: a new channel starts a call; others go to the owner."""
        if self.router.post(event):
            return
        if isinstance(event, ChannelEntered) and not event.replaced:
            role = event.args[0] if event.args else ""
            if role == "inbound":
                self.calls.start_inbound(event)
            elif role == "feature":
                self.acd.start_feature_code(event)
            elif not self.recovery.busy:
                log.warning("unexpected_channel", channel_id=event.channel_id, args=event.args)
                self.calls.hang_up_stray(event.channel_id)

    # -- ApiBackend -------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        """Links and flow load state for ``/health``."""
        links = {
            "ari": self.ari.link.snapshot(),
            "ami": self.ami.link.snapshot(),
            "db": self.store.health(),
        }
        body: dict[str, Any] = {
            **links,
            "flows": self.flows.status(),
            "calls_active": self.calls.active,
        }
        ok = all(link["up"] for link in links.values())
        body["status"] = "ok" if ok else "degraded"
        return ok, body

    async def recent_calls(self, limit: int) -> list[dict[str, Any]]:
        return [call_to_json(row) for row in await recent_calls(self.engine, limit)]

    async def call_detail(self, call_id: str) -> dict[str, Any] | None:
        row = await get_call(self.engine, call_id)
        if row is None:
            return None
        timeline = await call_timeline(self.engine, call_id)
        return {**call_to_json(row), "timeline": [event_to_json(e) for e in timeline]}

    def flows_status(self) -> dict[str, Any]:
        return self.flows.status()

    def agents(self) -> list[dict[str, Any]]:
        return self.acd.agents_json()

    def queues(self) -> list[dict[str, Any]]:
        return self.acd.queues_json()

    def agent_action(self, agent_id: str, action: str, reason: str | None) -> dict[str, Any]:
        return self.acd.agent_action(agent_id, action, reason)

    def schedule_overrides(self) -> dict[str, Any]:
        return self.flows.overrides_json()

    def schedule_names(self) -> set[str]:
        local = {name for loaded in self.flows.registry.snapshot().values()
                 for name in loaded.flow.schedules}
        return set(self.config.schedules) | local

    def set_schedule_override(
        self, name: str, state: Literal["open", "closed"], until: datetime | None, reason: str
    ) -> dict[str, Any]:
        return self.flows.set_override(name, state, until, reason)

    def clear_schedule_override(self, name: str) -> bool:
        return self.flows.clear_override(name)

    def agent_detail(self, agent_id: str) -> dict[str, Any]:
        definition = self.directory.describe(agent_id)
        live = self.acd.acd.board.agents[agent_id].snapshot()
        return {**live, **definition}

    async def create_agent(self, new: NewAgent) -> dict[str, Any]:
        await self.directory.create(new)
        return self.agent_detail(new.id)

    async def update_agent(self, agent_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        await self.directory.update(agent_id, changes)
        return self.agent_detail(agent_id)

    async def delete_agent(self, agent_id: str) -> None:
        await self.directory.delete(agent_id)

    def agent_call_control(self, agent_id: str, action: str, target: str | None
                           ) -> dict[str, Any]:
        self.directory.describe(agent_id)  # AgentNotFound for an unknown agent
        kind, _, value = (target or "").partition(":")
        if kind == "agent" and self.directory.source(value) is None:
            raise ApiError(400, "invalid_body", "the request body has invalid fields",
                           {"fields": {"to": f"unknown agent {value!r}"}})
        try:
            self.acd.call_control(agent_id, action, target)
        except AgentStateError as exc:
            raise ApiError(409, "agent_not_on_call", str(exc), {"agent_id": agent_id}) from None
        return self.agent_detail(agent_id)

    def queue_names(self) -> list[str]:
        return list(self.config.queues)

    async def queue_stats(self, queue: str, start: datetime, end: datetime) -> dict[str, Any]:
        stats = await queue_period_stats(
            self.engine, queue, self.config.queues[queue], start, end,
            horizon=timedelta(seconds=self.config.run.call_max_seconds),
        )
        return {"from": start.isoformat(), "to": end.isoformat(), **asdict(stats)}

    def crm_customer(self, account: str) -> dict[str, Any] | None:
        return DEMO_CRM.get(account)


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
