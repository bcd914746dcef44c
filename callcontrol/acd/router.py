"""The ACD: agents plus waiting lines, and the router task that matches them.

One long-lived task (:meth:`Acd.start`) runs :meth:`Acd._dispatch` whenever an agent becomes
free or a caller enters: entries of every queue are visited in routing order (priority, then
entry time) and each gets the best free agent its queue's strategy allows. The free agents of
each queue are kept in an index (updated on every agent transition), so a pick looks only at
agents that can take a call, and a round with no free agent visits no agent at all. Offering
an agent puts it in ``ringing`` synchronously, so an agent shared by two queues is offered to one
call at a time. A live caller's task is woken with
:class:`~callcontrol.acd.events.AgentOffered` through ``post``; a callback entry gets a task
of the router's own (:mod:`callcontrol.acd.callback`).

Everything that counts for statistics (``queue_entered``, ``queue_left``, ``queue_refused``,
``agent_connected``, ``agent_disconnected``, ``callback_*``) is appended here, in one place, as
:class:`~callcontrol.store.records.CallEvent` records; see ``docs/queue-statistics.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from callcontrol.acd.agents import Agent, AgentBoard, AgentState, AgentStateError
from callcontrol.acd.callback import CallbackRunner
from callcontrol.acd.dispositions import Dispositions
from callcontrol.acd.events import (
    AgentOffered,
    HoldRequested,
    QueueChanged,
    TransferRequested,
    UnholdRequested,
)
from callcontrol.acd.queues import QueueEntry, QueueFull, WaitingLine
from callcontrol.acd.strategies import RoundRobin, Strategy, has_skills, make_strategy
from callcontrol.calls.inbox import AcdMessage
from callcontrol.calls.session import ServiceCalls
from callcontrol.clock import utcnow
from callcontrol.config import AcdConfig, AgentConfig, QueueConfig
from callcontrol.logging import get_logger
from callcontrol.store.records import CallEvent, InteractionLog

_log = get_logger(__name__)


def _ranks(member_ids: Sequence[str]) -> dict[str, int]:
    """Each member's place in its queue's member order."""
    return {agent_id: i for i, agent_id in enumerate(member_ids)}


class UnknownQueue(AgentStateError):
    """No queue has this name."""

    error_id = "queue_unknown"


class Acd:
    """Owns the agents and the queues; the call session and the API talk to it.

    ``post`` delivers a domain event to the task of the call owning ``event.channel_id``.
    ``services`` starts the service calls the ACD's own callback tasks run on.
    """

    def __init__(
        self,
        agents: Sequence[AgentConfig],
        queues: Mapping[str, QueueConfig],
        *,
        log: InteractionLog,
        post: Callable[[AcdMessage], None],
        services: ServiceCalls,
        settings: AcdConfig | None = None,
        clock: Callable[[], datetime] = utcnow,
        seed: int | None = None,
    ) -> None:
        self.settings = settings or AcdConfig()
        self.clock = clock
        self._log = log
        self._post = post
        self.board = AgentBoard(
            agents, log, pause_reasons=self.settings.pause_reasons,
            login_code=self.settings.login_code, pause_code=self.settings.pause_code,
            clock=clock, on_change=self._agent_changed,
        )
        self.lines = {name: WaitingLine(name, config) for name, config in queues.items()}
        self.members = {name: [a.id for a in agents if name in a.queues] for name in queues}
        # queue -> its available agents (ids); kept by _agent_changed and _set_members
        self._free: dict[str, set[str]] = {name: set() for name in queues}
        self._rank = {name: _ranks(ids) for name, ids in self.members.items()}
        rng = random.Random(seed)
        self._strategies: dict[str, Strategy] = {
            name: make_strategy(config.strategy, self.members[name], rng)
            for name, config in queues.items()
        }
        self._connections: dict[str, str] = {}  # agent id -> caller channel while bridged
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._callbacks_held = False
        self.callbacks = CallbackRunner(self, services)
        self.dispositions = Dispositions(self.board, queues, log, clock)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the router task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="acd-router")

    async def stop(self) -> None:
        """Stop the router and the callback tasks; cancel wrap-up timers."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.callbacks.stop()
        self.board.shutdown()

    def feature_code(self, endpoint: str, code: str) -> AgentState:
        """A code dialed on a headset: the disposition code then digits gives the call in
        wrap-up its disposition; the others change the agent's state (the board's codes)."""
        prefix = self.settings.disposition_code
        digits = code.removeprefix(prefix)
        if code.startswith(prefix) and digits.isascii() and digits.isdigit():
            return self.dispositions.from_headset(endpoint, digits)
        return self.board.feature_code(endpoint, code)

    def wake(self) -> None:
        """Ask the router to match callers and agents again."""
        self._wake.set()

    def hold_callbacks(self) -> None:
        """Offer no agent to callback entries until :meth:`release_callbacks` (a restarted
        daemon holds the callbacks it put back until the PBX link is up)."""
        self._callbacks_held = True

    def release_callbacks(self) -> None:
        """Route callback entries again."""
        self._callbacks_held = False
        self.wake()

    # -- what a waiting caller's task calls -------------------------------------------------

    def queue_config(self, queue: str) -> QueueConfig:
        """The config of a queue; :class:`UnknownQueue` when there is none."""
        line = self.lines.get(queue)
        if line is None:
            raise UnknownQueue(f"unknown queue {queue!r}")
        return line.config

    def staffed(self, queue: str) -> bool:
        """True while at least one member agent is logged in (paused and wrap-up count)."""
        self.queue_config(queue)
        return any(self.board.agents[a].logged_in for a in self.members[queue])

    def enter(
        self,
        queue: str,
        call_id: str,
        channel_id: str,
        number: str,
        *,
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
        entered_at: datetime | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> QueueEntry:
        """Put a caller in line (``entered_at``: the original time of an adopted entry).

        ``details`` go on the ``queue_entered`` event (what a restarted daemon needs to put the
        caller back: see :mod:`callcontrol.acd.adopt`). Raises :class:`QueueFull` (logged as
        ``queue_refused`` with reason ``overflow``).
        """
        config = self.queue_config(queue)
        required = {**config.skills, **(skills or {})}
        try:
            entry, merged = self.lines[queue].add(
                call_id, channel_id, number, entered_at or self.clock(), priority=priority,
                skills=required,
            )
        except QueueFull:
            self.log_call(call_id, "queue_refused", queue=queue, reason="overflow")
            raise
        if merged is not None:
            self._merged(merged, call_id)
        self.log_call(call_id, "queue_entered", **{
            **(details or {}), "queue": queue, "entry_id": entry.entry_id,
            "priority": entry.priority, "entered_at": entry.entered_at.isoformat()})
        self.wake()
        return entry

    def readmit(
        self,
        queue: str,
        call_id: str,
        channel_id: str,
        number: str,
        *,
        entry_id: str,
        entered_at: datetime,
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
    ) -> QueueEntry:
        """Put an adopted caller back in line at its original place, under its original entry
        id (so statistics count one entry): logged as ``queue_readmitted``, not as a second
        ``queue_entered``. Raises :class:`QueueFull` when the line is full."""
        config = self.queue_config(queue)
        required = {**config.skills, **(skills or {})}
        entry, merged = self.lines[queue].add(call_id, channel_id, number, entered_at,
                                              priority=priority, skills=required)
        entry.entry_id = entry_id
        if merged is not None:
            self._merged(merged, call_id)
        self.log_call(call_id, "queue_readmitted", queue=queue, entry_id=entry_id,
                      priority=entry.priority, entered_at=entry.entered_at.isoformat(),
                      position=self.position(entry))
        self.wake()
        return entry

    def restore_callback(
        self,
        queue: str,
        call_id: str,
        number: str,
        *,
        entry_id: str,
        entered_at: datetime,
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
        attempts: int = 0,
        not_before: datetime | None = None,
    ) -> QueueEntry:
        """Put a pending callback of a previous daemon back at its original place, with the
        attempts it already had (see :mod:`callcontrol.acd.callback_store`): logged as
        ``callback_restored``. A callback for the same number already in line is merged."""
        config = self.queue_config(queue)
        required = {**config.skills, **(skills or {})}
        line = self.lines[queue]
        for existing in line:
            if existing.entry_id == entry_id:  # put back already
                return existing
        entry, merged = line.put_back_callback(
            call_id, number, entered_at, entry_id=entry_id, priority=priority, skills=required,
            attempts=attempts, not_before=not_before)
        if merged is not None:
            self._merged(merged, call_id)
        self.log_call(call_id, "callback_restored", queue=queue, entry_id=entry_id,
                      number=number, priority=entry.priority,
                      entered_at=entry.entered_at.isoformat(), attempts=attempts,
                      not_before=not_before.isoformat() if not_before else None,
                      position=self.position(entry))
        self.wake()
        return entry

    def adopt_connection(self, agent_id: str, call_id: str, queue: str,
                         caller_channel: str) -> None:
        """An adopted call is bridged with ``agent_id``: the agent is ``on_call`` with it and
        the API's hold and transfer reach the caller again."""
        self.board.adopt(agent_id, call_id, queue)
        self._connections[agent_id] = caller_channel

    def release_unadopted(self, live_call_ids: Collection[str]) -> list[str]:
        """Free the agents restored ``on_call`` (:meth:`AgentBoard.restore`) whose call no task
        runs (it was not adopted: gone); returns their ids."""
        freed = []
        for agent_id in sorted(self.board.awaiting_adoption):
            if self.board.agents[agent_id].call_id not in live_call_ids:
                self.board.release_unadopted(agent_id)
                freed.append(agent_id)
        return freed

    def refuse(self, queue: str, call_id: str, reason: str) -> None:
        """Log a caller turned away at the door (``no_agents``) without entering."""
        self.log_call(call_id, "queue_refused", queue=queue, reason=reason)

    def leave(self, entry: QueueEntry, reason: str, **data: Any) -> None:
        """Take an entry out of line for good, freeing an agent still reserved for it."""
        self._release_offer(entry)
        if self.lines[entry.queue].remove(entry):
            self.log_call(entry.call_id, "queue_left", queue=entry.queue, reason=reason,
                          entry_id=entry.entry_id,
                          wait_s=round(entry.wait_seconds(self.clock()), 3), **data)
        self.wake()

    def ring_failed(self, entry: QueueEntry, agent_id: str) -> None:
        """The offered agent did not answer: count it, keep the entry's place, route again."""
        if entry.offered_to == agent_id:
            entry.offered_to = None
            entry.tried.add(agent_id)
            self.board.ring_failed(agent_id, self.lines[entry.queue].config.max_no_answer)
            self.log_call(entry.call_id, "agent_no_answer", queue=entry.queue,
                          agent_id=agent_id, entry_id=entry.entry_id)
        self.wake()

    def answered(self, entry: QueueEntry, agent_id: str, caller_channel: str) -> float:
        """The agent answered and is being bridged: agent ``on_call``, entry ``answered``.

        Returns the caller's wait in seconds.
        """
        wait_s = round(entry.wait_seconds(self.clock()), 3)
        entry.offered_to = None
        self.board.connected(agent_id)
        self._connections[agent_id] = caller_channel
        self.lines[entry.queue].record_answered_wait(wait_s)
        self.leave(entry, "answered", agent_id=agent_id)
        self.log_call(entry.call_id, "agent_connected", queue=entry.queue, agent_id=agent_id,
                      wait_s=wait_s)
        return wait_s

    def call_ended(
        self, call_id: str, queue: str, agent_id: str, *, by: str, talk_s: float,
        hold_s: float = 0.0,
    ) -> None:
        """A bridged call ended (``by``: ``agent``, ``caller`` or ``transfer``): wrap-up."""
        self._connections.pop(agent_id, None)
        wrap_up_s, hold = self.wrap_up_of(agent_id, queue)
        self.log_call(call_id, "agent_disconnected", queue=queue, agent_id=agent_id, by=by,
                      talk_s=round(talk_s, 3), hold_s=round(hold_s, 3))
        self.board.call_ended(agent_id, wrap_up_s, disposition_max=hold)

    def wrap_up_of(self, agent_id: str, queue: str) -> tuple[float, float | None]:
        """The agent's wrap-up seconds after a call of ``queue`` (the agent's own, else the
        queue's), and the queue's ``wrap_up_max`` when it requires a disposition (else
        ``None``)."""
        config = self.lines[queue].config
        wrap = self.board.get(agent_id).config.wrap_up
        codes = config.dispositions
        return (wrap if wrap is not None else config.wrap_up,
                codes.wrap_up_max if codes is not None and codes.required else None)

    def ring_cancelled(self, entry: QueueEntry, agent_id: str) -> None:
        """The ring was stopped for a reason not the agent's (the caller left, max wait, a
        failed bridge): the agent goes back to rest, no no-answer is counted."""
        if entry.offered_to == agent_id:
            entry.offered_to = None
            self.board.ring_cancelled(agent_id)
        self.wake()

    def request_callback(self, entry: QueueEntry, number: str) -> None:
        """The caller confirmed a callback: the entry keeps its place with ``number``.

        ``callback_requested`` records the place (after a merge) and the required skills: all
        a restarted daemon needs to put the callback back (:mod:`~callcontrol.acd.
        callback_store`).
        """
        self._release_offer(entry)
        wait_s = round(entry.wait_seconds(self.clock()), 3)
        duplicate = self.lines[entry.queue].to_callback(entry, number)
        self.log_call(entry.call_id, "queue_left", queue=entry.queue, reason="callback",
                      entry_id=entry.entry_id, wait_s=wait_s)
        self.log_call(entry.call_id, "callback_requested", queue=entry.queue,
                      entry_id=entry.entry_id, number=number, priority=entry.priority,
                      entered_at=entry.entered_at.isoformat(), skills=dict(entry.skills))
        if duplicate is not None:
            self._merged(duplicate, entry.call_id)
        self.wake()

    def callback_connected(self, entry: QueueEntry, agent_id: str) -> None:
        """A callback bridged agent and customer: the entry leaves the line."""
        self.lines[entry.queue].remove(entry)
        self.log_call(entry.call_id, "callback_connected", queue=entry.queue, agent_id=agent_id,
                      entry_id=entry.entry_id, wait_s=round(entry.wait_seconds(self.clock()), 3))

    def callback_failed(self, entry: QueueEntry, reason: str) -> None:
        """A callback attempt failed: retry later at the same place, or give up."""
        entry.callback_attempts += 1
        if entry.callback_attempts >= self.settings.callback_attempts:
            self.lines[entry.queue].remove(entry)
            self.log_call(entry.call_id, "callback_failed", queue=entry.queue,
                          entry_id=entry.entry_id, reason=reason,
                          attempts=entry.callback_attempts)
        else:
            entry.not_before = self.clock() + timedelta(seconds=self.settings.callback_retry_delay)
            self.log_call(entry.call_id, "callback_retry", queue=entry.queue,
                          entry_id=entry.entry_id, reason=reason,
                          attempts=entry.callback_attempts,
                          not_before=entry.not_before.isoformat())
        self.wake()

    def position(self, entry: QueueEntry) -> int:
        """The entry's 1-based place in its line (0 once it left)."""
        return self.lines[entry.queue].position(entry)

    def estimated_wait(self, queue: str) -> float | None:
        """Mean wait of the queue's recently answered calls."""
        return self.lines[queue].estimated_wait()

    # -- what the API calls while an agent talks --------------------------------------------

    def hold(self, agent_id: str) -> None:
        """Put the agent's caller on hold (music on hold)."""
        self._post(HoldRequested(channel_id=self._caller_of(agent_id), agent_id=agent_id))

    def unhold(self, agent_id: str) -> None:
        """Take the agent's caller off hold."""
        self._post(UnholdRequested(channel_id=self._caller_of(agent_id), agent_id=agent_id))

    def transfer(self, agent_id: str, target: str) -> None:
        """Blind-transfer the agent's caller to ``queue:NAME``, ``agent:ID`` or
        ``number:+E164``; the agent leg is hung up and the agent goes to wrap-up."""
        kind, _, value = target.partition(":")
        if kind not in ("queue", "agent", "number") or not value:
            raise AgentStateError(f"bad transfer target {target!r}")
        if kind == "queue":
            self.queue_config(value)
        if kind == "agent":
            self.board.get(value)
        self._post(TransferRequested(channel_id=self._caller_of(agent_id), agent_id=agent_id,
                                     target=target))

    # -- the roster (agents managed through the HTTP API) ----------------------------------

    def add_agent(self, config: AgentConfig, *, reachable: bool = False) -> None:
        """Add a logged-out agent to the board and to its queues' members."""
        unknown = [q for q in config.queues if q not in self.lines]
        if unknown:
            raise UnknownQueue(f"unknown queues {', '.join(unknown)}")
        self.board.add_agent(config, reachable=reachable)
        self._set_members(config.id, config.queues)

    def update_agent(self, config: AgentConfig) -> None:
        """Apply new settings to an agent (queues take effect for the next routing round)."""
        unknown = [q for q in config.queues if q not in self.lines]
        if unknown:
            raise UnknownQueue(f"unknown queues {', '.join(unknown)}")
        self.board.replace_config(config)
        self._set_members(config.id, config.queues)
        self.wake()

    def remove_agent(self, agent_id: str) -> None:
        """Remove a logged-out agent from the board and every queue."""
        self.board.remove_agent(agent_id)
        self._set_members(agent_id, [])

    def _set_members(self, agent_id: str, queues: Sequence[str]) -> None:
        for name, members in self.members.items():
            if name in queues and agent_id not in members:
                members.append(agent_id)
            elif name not in queues and agent_id in members:
                members.remove(agent_id)
        for name in self.lines:
            self._rank[name] = _ranks(self.members[name])
            strategy = self._strategies[name]
            if isinstance(strategy, RoundRobin):
                strategy.set_members(self.members[name])
        agent = self.board.agents.get(agent_id)
        for name, free in self._free.items():
            if agent is not None and agent.state is AgentState.AVAILABLE \
                    and agent_id in self._rank[name]:
                free.add(agent_id)
            else:
                free.discard(agent_id)

    # -- logging ----------------------------------------------------------------------------

    def log_call(self, call_id: str, kind: str, **data: Any) -> None:
        """Append one entry to a call's timeline (stamped with the ACD's clock)."""
        _log.info(kind, call_id=call_id, **data)
        self._log.append(CallEvent(call_id=call_id, kind=kind, data=data, at=self.clock()))

    def caller_channel_of(self, agent_id: str) -> str | None:
        """The caller channel ``agent_id`` is bridged with, or ``None``."""
        return self._connections.get(agent_id)

    # -- internals --------------------------------------------------------------------------

    def _caller_of(self, agent_id: str) -> str:
        channel = self._connections.get(agent_id)
        if channel is None:
            raise AgentStateError(f"agent {agent_id} is not bridged with a caller")
        return channel

    def _merged(self, merged: QueueEntry, into_call_id: str) -> None:
        """A callback entry was merged into another entry for the same number."""
        self.callbacks.cancel(merged)
        self.log_call(merged.call_id, "callback_merged", queue=merged.queue,
                      entry_id=merged.entry_id, into_call_id=into_call_id)

    def _release_offer(self, entry: QueueEntry) -> None:
        agent_id, entry.offered_to = entry.offered_to, None
        if agent_id is not None and self.board.agents[agent_id].state is AgentState.RINGING:
            self.board.ring_cancelled(agent_id)

    def _agent_changed(self, agent: Agent) -> None:
        available = agent.state is AgentState.AVAILABLE
        for queue in agent.config.queues:
            free = self._free.get(queue)
            if free is None or agent.id not in self._rank[queue]:
                continue
            if available:
                free.add(agent.id)
            else:
                free.discard(agent.id)
        if available:
            self.wake()
        if not agent.logged_in:
            for queue in agent.config.queues:
                if queue in self.lines and not self.staffed(queue):
                    for entry in self.lines[queue]:
                        if entry.channel_id is not None:
                            self._post(QueueChanged(channel_id=entry.channel_id, queue=queue))

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            delay = self._dispatch()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _dispatch(self) -> float | None:
        """Offer free agents to waiting entries; returns seconds until a callback is due."""
        now = self.clock()
        due: list[float] = []
        entries: list[QueueEntry] = []
        for line in self.lines.values():
            for entry in line:
                if entry.offered_to is not None or (entry.is_callback
                                                    and self._callbacks_held):
                    continue
                if entry.not_before is not None and entry.not_before > now:
                    due.append((entry.not_before - now).total_seconds())
                    continue
                entries.append(entry)
        entries.sort(key=QueueEntry.sort_key)
        for allow_tried in (False, True):
            for entry in entries:
                if entry.offered_to is None and self._free[entry.queue]:
                    agent = self._pick(entry, allow_tried)
                    if agent is not None:
                        self._offer(entry, agent)
        return min(due) if due else None

    def _pick(self, entry: QueueEntry, allow_tried: bool) -> Agent | None:
        """The best free agent for ``entry``: the strategy orders the queue's free agents
        that qualify, in the queue's member order (as if every member had been visited)."""
        agents = self.board.agents
        rank = self._rank[entry.queue]
        candidates = [
            agent for agent in (agents[a] for a in sorted(self._free[entry.queue],
                                                          key=rank.__getitem__))
            if agent.reachable and has_skills(agent, entry.skills)
            and (allow_tried or agent.id not in entry.tried)
        ]
        if not candidates:
            return None
        return self._strategies[entry.queue].order(candidates, entry.skills)[0]

    def _offer(self, entry: QueueEntry, agent: Agent) -> None:
        self.board.offer(agent.id, entry.call_id, entry.queue)
        self._strategies[entry.queue].picked(agent)
        entry.offered_to = agent.id
        self.log_call(entry.call_id, "agent_offered", queue=entry.queue, agent_id=agent.id,
                      entry_id=entry.entry_id)
        if entry.channel_id is None:
            self.callbacks.start(entry, agent.id)
        else:
            self._post(AgentOffered(channel_id=entry.channel_id, agent_id=agent.id,
                                    queue=entry.queue, entry_id=entry.entry_id))

