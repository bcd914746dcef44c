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
from callcontrol.errors import ApiError, Forbidden, InvalidRequest, UnknownObject, WrongState
from callcontrol.flows.runtime import FlowService
from callcontrol.links import LinkState
from callcontrol.numbers import NumberPlan
from callcontrol.recording.access import OpenRecording, open_recording
from callcontrol.recording.paths import RecordingPaths
from callcontrol.store.call_search import (
    CallFilter,
    Cursor,
    call_stories,
    find_calls,
    handled_by,
    recordings_of,
)
from callcontrol.store.queries import (
    call_timeline,
    call_to_json,
    event_to_json,
    get_call,
    iso_utc,
)
from callcontrol.store.recording_queries import get_recording
from callcontrol.store.records import CallEvent
from callcontrol.store.tables import CallRow, RecordingRow
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
        directory: AgentDirectory, calls: CallManager, recordings: RecordingPaths,
    ) -> None:
        self.config = config
        self.engine = engine
        self.store = store
        self.links = links
        self.flows = flows
        self.acd = acd
        self.directory = directory
        self.calls = calls
        self.recordings = recordings

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

    async def call_detail(self, call_id: str, as_agent: str | None = None
                          ) -> dict[str, Any] | None:
        row = await self._visible_call(call_id, as_agent)
        if row is None:
            return None
        timeline = await call_timeline(self.engine, call_id)
        recordings = (await recordings_of(self.engine, [call_id]))[call_id]
        return {**call_to_json(row), "timeline": [event_to_json(e) for e in timeline],
                "recordings": [recording_json(r) for r in recordings]}

    async def _visible_call(self, call_id: str, as_agent: str | None) -> CallRow | None:
        """The call row; :class:`Forbidden` when ``as_agent`` did not handle it."""
        row = await get_call(self.engine, call_id)
        if row is not None and as_agent is not None and not await handled_by(
                self.engine, row, as_agent):
            raise Forbidden("forbidden", "an agent token reads only the calls its agent "
                            "handled", {"call_id": call_id})
        return row

    async def find_calls(self, where: CallFilter, limit: int, after: Cursor | None
                         ) -> tuple[list[dict[str, Any]], Cursor | None]:
        page = await find_calls(self.engine, where, limit, after)
        return [call_to_json(row) for row in page.calls], page.next

    async def customer_calls(self, where: CallFilter, limit: int, after: Cursor | None
                             ) -> tuple[list[dict[str, Any]], Cursor | None]:
        page = await find_calls(self.engine, where, limit, after)
        ids = [row.call_id for row in page.calls]
        stories = await call_stories(self.engine, ids)
        recordings = await recordings_of(self.engine, ids)
        return [history_json(row, stories[row.call_id].path, stories[row.call_id].inputs,
                             recordings[row.call_id]) for row in page.calls], page.next

    def number_plan(self) -> NumberPlan:
        site = self.config.site
        return NumberPlan(site.country_code, site.national_prefix)

    async def open_recording(self, recording_id: str, as_agent: str | None, by: str
                             ) -> OpenRecording:
        row = await get_recording(self.engine, recording_id)
        if row is None:
            raise UnknownObject("recording_not_found", "no such recording",
                                {"recording_id": recording_id})
        call = await get_call(self.engine, row.call_id)
        if as_agent is not None and (call is None or not await handled_by(
                self.engine, call, as_agent)):
            self.recording_accessed(row, by, None, 403)
            raise Forbidden("forbidden", "an agent token reads only the recordings of calls "
                            "its agent handled", {"recording_id": recording_id})
        return open_recording(self.recordings, row)

    def recording_accessed(self, row: RecordingRow, by: str, byte_range: str | None,
                           status: int) -> None:
        kind = "recording_accessed" if status < 400 else "recording_access_denied"
        self.store.append(CallEvent(call_id=row.call_id, kind=kind, data={
            "recording_id": row.id, "by": by, "range": byte_range, "status": status}))

    async def give_disposition(self, call_id: str, code: str, note: str | None, *, by: str,
                               as_agent: str | None) -> dict[str, Any]:
        try:
            return self.acd.core.dispositions.give(call_id, code, note, by=by,
                                                   as_agent=as_agent)
        except WrongState as exc:
            if exc.error_id == "not_in_wrap_up" and await get_call(self.engine, call_id) is None:
                raise UnknownObject("call_not_found", "no such call",
                                    {"call_id": call_id}) from None
            raise

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


def recording_json(row: RecordingRow) -> dict[str, Any]:
    """A recording as the API lists it (with its download URL)."""
    return {"id": row.id, "n": row.n, "status": row.status, "format": row.format,
            "channels": row.channels, "started_at": iso_utc(row.started_at),
            "ended_at": iso_utc(row.ended_at), "duration_s": row.duration_s,
            "size_bytes": row.size_bytes, "sha256": row.sha256, "policy": row.policy,
            "url": f"/api/recordings/{row.id}"}


def history_json(row: CallRow, path: list[str], inputs: dict[str, Any],
                 recordings: list[RecordingRow]) -> dict[str, Any]:
    """One call of a customer history."""
    disposition = None
    if row.disposition is not None:
        disposition = {"code": row.disposition, "label": row.disposition_label,
                       "note": row.disposition_note, "by": row.disposition_by,
                       "at": iso_utc(row.disposition_at)}
    return {"call_id": row.call_id, "started_at": iso_utc(row.started_at),
            "ended_at": iso_utc(row.ended_at), "caller_number": row.caller_number,
            "extension": row.extension, "flow": row.flow, "path": path, "inputs": inputs,
            "tags": row.tags, "queue": row.queue, "agent_id": row.agent_id,
            "outcome": row.outcome, "disposition": disposition,
            "recordings": [recording_json(r) for r in recordings]}
