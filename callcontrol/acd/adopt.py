"""Queue callers a restarted daemon adopts (DECISIONS.md, "Restart and adopt").

The ACD's part of :mod:`callcontrol.recovery`. A call's timeline says where its caller was in
the ACD when the previous daemon died (the ``queue_entered`` event carries the request):

    last ``queue_entered`` E, no ``queue_left`` of E since      -> waiting: back in line with E's
                                                                   entry id, priority and time,
                                                                   music on hold again
    then ``agent_connected``, no ``agent_disconnected`` since,  -> bridged: the bridge is kept,
    and the bridge ``<call>-queue`` still exists                   the agent ``on_call`` with it
    anything else (IVR, dial step, callback, bridge gone)       -> not adopted here

An adopted call gets a task of its own (:meth:`callcontrol.calls.manager.CallManager.adopt`)
that runs :func:`_resume` instead of the flow. The flow cannot be resumed (its engine state died
with the daemon), so an exit that would go back to the flow ends the call here instead:

    the caller hangs up                -> ``completed`` (talked) or ``abandoned`` (waited)
    the agent hangs up first (after)   -> ``goodbye`` played, caller hung up: ``completed``
    callback confirmed                 -> ``callback_requested`` (the flow would end there too)
    max_wait / no agents / full / key  -> the dialplan fallback: ``timed_out``, ``no_agents``,
                                          ``overflow``, ``interrupted``

Agents come back first (:func:`restore_agents`, at start): each in the state its journal showed
last, an agent on a call still ``on_call`` with it until the call is adopted or found gone, an
agent in wrap-up for a queue that requires a disposition held again until the call gets one (or
``wrap_up_max`` from the call's end passes: ``missing``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.agents import AgentStateError, HeldWrapUp
from callcontrol.acd.connect import request_from_details, resume_talking, resume_waiting
from callcontrol.acd.queues import QueueEntry, QueueFull
from callcontrol.acd.router import Acd
from callcontrol.calls.context import (
    CallContext,
    QueueRequest,
    QueueResult,
    TimelineEntry,
    caller_info,
    play_and_wait,
)
from callcontrol.logging import get_logger
from callcontrol.store.adoption import dispositions_of, last_agent_states
from callcontrol.store.records import Outcome
from callcontrol.store.tables import AgentEventRow, CallEventRow
from callcontrol.telephony import ChannelInfo

_log = get_logger(__name__)

GOODBYE = ("sound:goodbye",)
"""What an adopted caller hears when the agent hangs up first (the flow's ``after`` is gone)."""

FALLBACK_OUTCOMES: Mapping[str, Outcome] = {
    "timeout": "timed_out", "no_agents": "no_agents", "full": "overflow"}
"""Outcome of an adopted caller's queue exit that leads to the dialplan fallback."""


class AdoptedCall(CallContext, Protocol):
    """An adopted call as its new task sees it: a call context that can also leave for the
    dialplan fallback (the call session's own API)."""

    async def hand_to_dialplan(self) -> None:
        """Stop what plays and send the caller to the dialplan fallback."""


AdoptedRunner = Callable[[AdoptedCall], Awaitable[Outcome]]


@dataclass(frozen=True)
class QueueState:
    """Where a call's caller was in the ACD, read from its timeline."""

    request: QueueRequest
    entry_id: str
    entered_at: datetime
    agent_id: str | None = None  # bridged with this agent
    connected_at: datetime | None = None
    on_hold: bool = False


def queue_state(timeline: Sequence[TimelineEntry]) -> QueueState | None:
    """The caller's place in the ACD at the end of ``timeline``; ``None`` when it is in none."""
    state: QueueState | None = None
    for event in timeline:
        data = event.data
        if event.kind == "queue_entered":
            state = QueueState(request_from_details(data), str(data["entry_id"]),
                               datetime.fromisoformat(str(data["entered_at"])))
        elif state is None:
            continue
        elif event.kind == "queue_left" and data.get("entry_id") == state.entry_id:
            state = state if data.get("reason") == "answered" else None
        elif event.kind == "agent_connected":
            state = replace(state, agent_id=str(data["agent_id"]), connected_at=event.at)
        elif event.kind == "agent_disconnected":
            state = None
        elif event.kind in ("hold", "unhold") and state.agent_id is not None:
            state = replace(state, on_hold=event.kind == "hold")
    return state


def queue_bridge_id(call_id: str) -> str:
    """The bridge a queue caller shares with its agent (named after the call)."""
    return f"{call_id}-queue"


@dataclass(frozen=True)
class Adoption:
    """What the recovery needs to track an adopted call again."""

    kind: str  # "bridged" or "waiting"
    runner: AdoptedRunner  # runs in the call's new task instead of the flow
    claims: tuple[str, ...] = ()  # other channels of the call (the agent leg)
    details: dict[str, Any] = field(default_factory=dict)  # for the ``recovered`` event


def plan_adoption(
    acd: Acd, *, call_id: str, caller_channel: str, caller_number: str,
    timeline: Sequence[TimelineEntry], channels: Mapping[str, ChannelInfo],
) -> Adoption | None:
    """Take back a queue caller of a previous daemon (see the module docstring), or ``None``.

    Synchronous on purpose: the caller is back in line (or its agent ``on_call``) when this
    returns, and the recovery creates the call's task, which claims the caller's channel,
    before the ACD's router can run and offer it an agent.
    """
    state = queue_state(timeline)
    if state is None or state.request.name not in acd.lines:
        return None
    caller = caller_info(caller_number, "")
    number = "" if caller.withheld else caller.number
    details: dict[str, Any] = {"queue": state.request.name, "entry_id": state.entry_id}
    if state.agent_id is None:
        try:
            entry = acd.readmit(state.request.name, call_id, caller_channel, number,
                                entry_id=state.entry_id, entered_at=state.entered_at,
                                priority=state.request.priority, skills=state.request.skills)
        except QueueFull:
            return None
        runner = functools.partial(_resume, acd=acd, state=state, entry=entry)
        return Adoption("waiting", runner, (), details)
    bridge = queue_bridge_id(call_id)
    members = [c for c, info in channels.items() if bridge in info.bridge_ids]
    if not members:  # nobody in the bridge: it is gone (or empty), nothing to keep
        return None
    legs = [c for c in members if c != caller_channel]
    agent_leg = legs[0] if legs else None
    try:
        acd.adopt_connection(state.agent_id, call_id, state.request.name, caller_channel)
    except AgentStateError as exc:
        _log.warning("adoption_refused", call_id=call_id, error=str(exc))
        return None
    entry = QueueEntry(queue=state.request.name, call_id=call_id, channel_id=caller_channel,
                       number=number, priority=state.request.priority,
                       entered_at=state.entered_at, seq=0, entry_id=state.entry_id)
    runner = functools.partial(_resume, acd=acd, state=state, entry=entry, bridge_id=bridge,
                               agent_leg=agent_leg)
    return Adoption("bridged", runner, (agent_leg,) if agent_leg else (),
                    {**details, "agent_id": state.agent_id, "agent_channel": agent_leg,
                     "bridge_id": bridge})


async def _resume(
    ctx: AdoptedCall, *, acd: Acd, state: QueueState, entry: QueueEntry,
    bridge_id: str | None = None, agent_leg: str | None = None,
) -> Outcome:
    """The adopted call's task body: the rest of its stay, then how the call ends."""
    if state.agent_id is None:
        result = await resume_waiting(ctx, state.request, acd, entry)
    else:
        assert bridge_id is not None and state.connected_at is not None
        talk_s = max(0.0, (ctx.now() - state.connected_at).total_seconds())
        result = await resume_talking(
            ctx, state.request, acd, entry, agent_id=state.agent_id, agent_leg=agent_leg,
            bridge_id=bridge_id, talk_s=talk_s, on_hold=state.on_hold)
    ctx.log("adopted_queue_result", queue=state.request.name, exit=result.exit,
            agent=result.agent_id)
    return await _end(ctx, result)


async def _end(ctx: AdoptedCall, result: QueueResult) -> Outcome:
    """How an adopted call ends after its queue exit (no flow to go back to)."""
    if result.exit == "hangup":
        return "abandoned" if result.data.get("outcome") == "abandoned" else "completed"
    if result.exit == "after":
        ctx.log("goodbye", reason="adopted call: the flow's after exit cannot be resumed")
        await play_and_wait(ctx, GOODBYE, ctx.next_playback_id(), timeout=10.0)
        return "completed"
    if result.exit == "callback":
        return "callback_requested"
    await ctx.hand_to_dialplan()
    return FALLBACK_OUTCOMES.get(result.exit, "interrupted")


async def restore_agents(engine: AsyncEngine, acd: Acd) -> dict[str, str]:
    """Put every agent back in the state its last journaled change left it in (a restarted
    daemon starts with all agents logged out); an agent held in wrap-up for a required
    disposition its call has not got is held again (:func:`held_wrap_up`). Returns agent id
    -> restored state."""
    board = acd.board
    rows = [row for row in await last_agent_states(engine) if row.agent_id in board.agents]
    wrapping = {str(row.data["call_id"]) for row in rows
                if row.data.get("to") == "wrap_up" and row.data.get("call_id")}
    given: dict[str, list[CallEventRow]] = {}
    for entry in await dispositions_of(engine, wrapping):
        given.setdefault(entry.call_id, []).append(entry)
    restored: dict[str, str] = {}
    for row in rows:
        data = row.data
        state = board.restore(row.agent_id, str(data.get("to", "logged_out")),
                              reason=str(data.get("pause_reason") or ""),
                              call_id=data.get("call_id"), queue=data.get("queue"),
                              held=held_wrap_up(acd, row, given.get(str(data.get("call_id")), [])))
        restored[row.agent_id] = state.value
    if restored:
        _log.info("agents_restored", agents=restored)
    return restored


def held_wrap_up(acd: Acd, row: AgentEventRow, given: Sequence[TimelineEntry]
                 ) -> HeldWrapUp | None:
    """The disposition hold an agent's last state change ``row`` left (``None`` when there is
    none): the agent went into wrap-up after a call of a queue that requires a disposition,
    and that call got none from this agent (nor ``missing``) since (``given``: the call's
    ``disposition`` and ``disposition_missing`` entries)."""
    data = row.data
    call_id, queue = data.get("call_id"), data.get("queue")
    if data.get("to") != "wrap_up" or not call_id or queue not in acd.lines:
        return None
    wrap_up_s, hold = acd.wrap_up_of(row.agent_id, str(queue))
    if hold is None:
        return None
    for entry in given:
        if entry.at >= row.at and entry.data.get("agent_id") == row.agent_id:
            return None
    return HeldWrapUp(row.at, wrap_up_s, hold)
