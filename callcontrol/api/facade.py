"""The API facade: the one implementation of :class:`~callcontrol.api.backend.ApiBackend`.

It asks the domain (flows, the ACD and its agent directory, the call manager) and the store,
never ARI: link health arrives as :class:`~callcontrol.links.LinkState` objects. Domain errors
stay domain errors here; :mod:`callcontrol.api.server` maps them to HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.agents import AgentStateError
from callcontrol.acd.directory import AgentDirectory, NewAgent
from callcontrol.acd.service import AcdService
from callcontrol.acd.stats import live_stats, queue_period_stats
from callcontrol.calls.manager import CallManager
from callcontrol.config import Config
from callcontrol.errors import ApiError, InvalidRequest, UnknownObject, WrongState
from callcontrol.flows.runtime import FlowService
from callcontrol.links import LinkState
from callcontrol.store.queries import (
    call_timeline,
    call_to_json,
    event_to_json,
    get_call,
    recent_calls,
)
from callcontrol.store.writer import StoreWriter

DEMO_CRM: dict[str, dict[str, Any]] = {
    "123456": {"account": "123456", "name": "Mario Rossi", "tier": "vip", "balance": 12.5},
    "654321": {"account": "654321", "name": "Anna Bianchi", "tier": "standard",
               "balance": 0.0},
}


class ApiFacade:
    """The domain as the HTTP API sees it."""

    def __init__(
        self, *, config: Config, engine: AsyncEngine, store: StoreWriter,
        links: Mapping[str, LinkState], flows: FlowService, acd: AcdService,
        directory: AgentDirectory, calls: CallManager,
    ) -> None:
        self.config = config
        self.engine = engine
        self.store = store
        self.links = links
        self.flows = flows
        self.acd = acd
        self.directory = directory
        self.calls = calls

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Links and flow load state for ``/health``."""
        links = {
            **{name: link.snapshot() for name, link in self.links.items()},
            "db": self.store.health(),
            "journal": self.store.journal_health(),
        }
        body: dict[str, Any] = {
            **links,
            "flows": self.flows.status(),
            "calls_active": self.calls.active,
            "tasks": len(asyncio.all_tasks()),
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
        return self.acd.roster.agents_json()

    def queues(self) -> list[dict[str, Any]]:
        """Every queue: live figures and today's figures (docs/queue-statistics.md)."""
        core, today = self.acd.core, self.acd.today
        live = live_stats(core)
        start = today.day_start
        result = []
        for name, line in core.lines.items():
            body = asdict(today.figures(name, line.config))
            body.pop("queue")
            result.append({"name": name, "strategy": line.config.strategy, **live[name],
                           "today": {"since": start.isoformat(), **body}})
        return result

    def agent_action(self, agent_id: str, action: str, reason: str | None) -> dict[str, Any]:
        return self.acd.roster.agent_action(agent_id, action, reason)

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
        live = self.acd.board.agents[agent_id].snapshot()
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
            raise InvalidRequest("invalid_body", "the request body has invalid fields",
                                 {"fields": {"to": f"unknown agent {value!r}"}})
        try:
            self.acd.roster.call_control(agent_id, action, target)
        except AgentStateError as exc:
            raise WrongState("agent_not_on_call", str(exc), {"agent_id": agent_id}) from None
        return self.agent_detail(agent_id)

    async def recording_control(self, call_id: str, action: str, by: str,
                                agent_id: str | None = None) -> dict[str, Any]:
        session = self.calls.sessions.get(call_id)
        if session is None:
            raise UnknownObject("call_not_live", "no call in progress with this id",
                                {"call_id": call_id})
        if agent_id is not None and self.acd.core.caller_channel_of(agent_id) != \
                session.channel_id:
            raise ApiError(403, "forbidden", "an agent controls the recording of its own call "
                           "only", {"call_id": call_id})
        recordings = session.recordings
        if action == "start":
            changed = await recordings.start(by, on_demand=True, wait_consent=False)
        elif action == "stop":
            changed = await recordings.stop(by)
        elif action == "mute":
            changed = await recordings.mute(by, "api")
        else:
            changed = await recordings.unmute(by, "api")
        if not changed:
            raise WrongState("recording_unchanged", f"the recording cannot {action} now "
                             "(already done, nothing recording, or its policy forbids it)",
                             {"call_id": call_id, "action": action})
        return {"call_id": call_id, "action": action, "by": by}

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
