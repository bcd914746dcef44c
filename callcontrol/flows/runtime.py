"""The flows as the daemon runs them: the registry (with hot reload) and one engine per call.

:class:`FlowService` is what the app wires: it loads and watches the flow folder, picks the
flow for a call by its dialed extension (``flows.routes``), and runs the engine in the call's
task on the snapshot of flows taken when the call started.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from callcontrol.calls.context import CallContext, play_and_wait
from callcontrol.clock import utcnow
from callcontrol.config import NO_RECORDING, Config, resolve_secret
from callcontrol.flows.check import CheckContext
from callcontrol.flows.engine import APOLOGY, FlowEngine, FlowServices
from callcontrol.flows.expressions import Sandbox
from callcontrol.flows.httpstep import HttpStepClient
from callcontrol.flows.model import Schedule
from callcontrol.flows.prompts import PromptResolver
from callcontrol.flows.registry import FlowRegistry
from callcontrol.flows.schedule import Overrides
from callcontrol.logging import get_logger
from callcontrol.store.records import OUTCOMES, Outcome

log = get_logger("callcontrol.flows.runtime")


def shared_schedules(config: Config) -> dict[str, Schedule]:
    """The schedules of the daemon's config, validated by the flow model."""
    raw: Mapping[str, Any] = getattr(config, "schedules", {}) or {}
    return {name: Schedule.model_validate(value) for name, value in raw.items()}


class FlowService:
    """Loads, watches and runs the flows of ``config.flows.dir``."""

    def __init__(
        self,
        config: Config,
        *,
        to_pbx: Callable[[Path], str] = str,
        stock_sounds: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self.config = config
        folder = config.path(config.flows.dir)
        schedules = shared_schedules(config)
        self.registry = FlowRegistry(
            folder,
            CheckContext(
                known_queues=set(config.queues),
                recording_policies={NO_RECORDING, *config.recording.policies},
                shared_schedules=schedules,
                stock_sounds=stock_sounds or {},
            ),
        )
        secrets = {
            name: resolve_secret(config, ref).get_secret_value()
            for name, ref in config.flows.secrets.items()
        }
        api_address = f"{config.http.host}:{config.http.port}"
        self.http = HttpStepClient(
            [entry.replace("{api}", api_address) for entry in config.flows.http_allow_hosts]
        )
        self.overrides = Overrides()
        self.services = FlowServices(
            sandbox=Sandbox(secrets),
            prompts=PromptResolver(folder / "prompts", to_pbx),
            http=self.http,
            schedules=schedules,
            overrides=self.overrides,
            site_timezone=ZoneInfo(config.site.timezone),
        )
        api = f"http://{config.http.host}:{config.http.port}"
        self.initial_variables = {
            key: value.replace("{api}", api) if isinstance(value, str) else value
            for key, value in config.flows.variables.items()
        }
        self._stop = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    # -- operator overrides of schedules --------------------------------------------------
    def _overrides_path(self) -> Path:
        return self.config.path(self.config.flows.overrides_file)

    def _load_overrides(self) -> None:
        try:
            saved = json.loads(self._overrides_path().read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("overrides_unreadable", path=str(self._overrides_path()), error=str(exc))
            return
        for name, item in saved.items():
            until = datetime.fromisoformat(item["until"]) if item.get("until") else None
            self.overrides.set(name, item["state"], until, item.get("reason", ""))

    def _save_overrides(self) -> None:
        active = self.overrides.active(utcnow())
        data = {
            name: {"state": o.state, "until": o.until.isoformat() if o.until else None,
                   "reason": o.reason}
            for name, o in active.items()
        }
        path = self._overrides_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)

    def set_override(
        self, name: str, state: Literal["open", "closed"], until: datetime | None, reason: str
    ) -> dict[str, Any]:
        """Force schedule ``name`` open or closed (until ``until``); logged and persisted."""
        self.overrides.set(name, state, until, reason)
        self._save_overrides()
        log.warning("schedule_override_set", schedule=name, state=state,
                    until=until.isoformat() if until else None, reason=reason)
        return self.overrides_json()

    def clear_override(self, name: str) -> bool:
        """Remove the override of ``name``; ``False`` when there was none."""
        cleared = self.overrides.clear(name)
        if cleared:
            self._save_overrides()
            log.warning("schedule_override_cleared", schedule=name)
        return cleared

    def overrides_json(self) -> dict[str, Any]:
        """Active overrides by schedule name (for ``/health`` and the API)."""
        return {
            name: {"state": o.state, "until": o.until.isoformat() if o.until else None,
                   "reason": o.reason}
            for name, o in self.overrides.active(utcnow()).items()
        }

    async def start(self) -> None:
        """Load every flow and the saved overrides; start watching the folder."""
        self._load_overrides()
        self.registry.load_all()
        status = self.registry.status()
        log.info("flows_loaded", live=sorted(status["live"]), refused=sorted(status["refused"]))
        if self.config.flows.watch:
            self._watch = asyncio.create_task(self.registry.watch(self._stop), name="flow-watch")

    async def close(self) -> None:
        """Stop watching and close the http client."""
        self._stop.set()
        if self._watch is not None:
            try:
                await asyncio.wait_for(self._watch, 5)
            except TimeoutError:
                self._watch.cancel()
        await self.http.close()

    def live_names(self) -> list[str]:
        """The names of the live flows."""
        return sorted(self.registry.snapshot())

    def status(self) -> dict[str, Any]:
        """Live flows, versions, refused changes and schedule overrides."""
        return {**self.registry.status(), "schedule_overrides": self.overrides_json()}

    async def run_call(self, ctx: CallContext) -> Outcome:
        """Run the flow routed to the call's extension; return the call's outcome."""
        flows = self.registry.snapshot()
        name = self.config.flows.routes.get(ctx.extension)
        if name is None:
            ctx.log("no_route", extension=ctx.extension)
            return await self._apologize(ctx)
        result = await FlowEngine(ctx, flows, self.services).run(name, self.initial_variables)
        outcome = result.outcome
        if outcome not in OUTCOMES:
            ctx.log("unknown_outcome", outcome=outcome)
            return "failed"
        return outcome  # type: ignore[return-value]

    async def _apologize(self, ctx: CallContext) -> Outcome:
        await play_and_wait(ctx, list(APOLOGY), ctx.next_playback_id("apology"), timeout=10.0)
        return "failed"
