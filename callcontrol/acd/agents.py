"""Agent state machine: who may be offered a call, and the timeline that sums agent time.

    logged_out --login--> available <--------------------------------+
        ^                   |  ^  \\--pause--> paused --unpause-------+
        |                   |  |   \\--headset lost--> unreachable ---+ (headset back)
        |                 offer |
        |                   v  | ring failed / cancelled
        +---logout------- ringing --answered--> on_call --call end--> wrap_up --timer-->+

Every change goes through :meth:`AgentBoard._transition`, which checks :data:`TRANSITIONS`, logs
it and appends an :class:`~callcontrol.store.records.AgentEvent` (``kind="state"``, ``data``
with ``from``, ``to``, ``reason`` and ``seconds`` spent in the state left), so login, pause,
talk and wrap-up seconds can be summed from the log alone.

Wrap-up ends when its timer does; a queue that requires a disposition (a wrap-up code) holds
the agent in wrap-up past the timer until the code is given (:meth:`AgentBoard.disposed`) or the
queue's ``wrap_up_max`` passes (the call's disposition is then ``missing``). So wrap-up is still
one state with one way out, whichever of the two ended it.

A logout or pause asked for while the agent rings or talks (or is held for a disposition) is
kept as pending and applied when the call (and its wrap-up) ends; an agent whose headset is not
registered is never offered a call. After a daemon restart, :meth:`AgentBoard.restore` puts
each agent back in the state its journal showed last (an agent on a call keeps it until the
call is adopted or found gone; an agent held in wrap-up for a required disposition is held
again, until the code comes or what is left of ``wrap_up_max`` passes).
Everything here is synchronous: call it from the event loop, never from a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from callcontrol.clock import utcnow
from callcontrol.config import AgentConfig
from callcontrol.errors import CallControlError
from callcontrol.logging import get_logger
from callcontrol.store.records import AgentEvent, CallEvent, CallUpdated, InteractionLog

_log = get_logger(__name__)


class AgentState(StrEnum):
    """The states an agent can be in."""

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    UNREACHABLE = "unreachable"


S = AgentState
TRANSITIONS: dict[AgentState, frozenset[AgentState]] = {
    # paused, on_call and wrap_up only when a restarted daemon restores an agent
    # (AgentBoard.restore)
    S.LOGGED_OUT: frozenset({S.AVAILABLE, S.UNREACHABLE, S.PAUSED, S.ON_CALL, S.WRAP_UP}),
    S.AVAILABLE: frozenset({S.RINGING, S.PAUSED, S.LOGGED_OUT, S.UNREACHABLE}),
    S.RINGING: frozenset({S.ON_CALL, S.AVAILABLE, S.PAUSED, S.LOGGED_OUT, S.UNREACHABLE}),
    S.ON_CALL: frozenset({S.WRAP_UP, S.AVAILABLE, S.PAUSED, S.LOGGED_OUT, S.UNREACHABLE}),
    S.WRAP_UP: frozenset({S.AVAILABLE, S.PAUSED, S.LOGGED_OUT, S.UNREACHABLE}),
    S.PAUSED: frozenset({S.AVAILABLE, S.LOGGED_OUT, S.UNREACHABLE}),
    S.UNREACHABLE: frozenset({S.AVAILABLE, S.PAUSED, S.LOGGED_OUT}),
}
"""The one table of allowed agent transitions (``from -> {to}``)."""

MISSING = "missing"
"""The disposition of a call whose required wrap-up code never came (``wrap_up_max``)."""

BUSY_STATES = frozenset({S.RINGING, S.ON_CALL})
"""States in which an agent's call owns it: logout and pause wait for the call to end."""


def disposition_update(call_id: str, code: str, label: str | None, note: str | None, by: str,
                       at: datetime) -> CallUpdated:
    """The call-row change that records a disposition (``code`` or :data:`MISSING`)."""
    return CallUpdated(call_id=call_id, at=at, fields={
        "disposition": code, "disposition_label": label, "disposition_note": note,
        "disposition_by": by, "disposition_at": at})


@dataclass(frozen=True)
class HeldWrapUp:
    """A wrap-up a restarted daemon holds again for a required disposition: the call ended at
    ``ended_at``; its wrap-up lasts ``wrap_up_s`` seconds, the hold at most ``disposition_max``
    (both from ``ended_at``)."""

    ended_at: datetime
    wrap_up_s: float
    disposition_max: float


class AgentStateError(CallControlError):
    """An agent operation is not allowed in the agent's current state (or the agent or reason
    is unknown)."""

    error_id = "agent_state"


@dataclass
class Agent:
    """One agent's live state and counters (owned by :class:`AgentBoard`)."""

    config: AgentConfig
    state: AgentState = AgentState.LOGGED_OUT
    state_since: datetime = field(default_factory=utcnow)
    reason: str = ""
    reachable: bool = True
    calls_answered: int = 0
    consecutive_no_answers: int = 0
    idle_since: datetime | None = None
    last_call_end: datetime | None = None
    wrap_up_until: datetime | None = None
    pending: str | None = None  # "logout" or "pause:REASON", applied when the call ends
    call_id: str | None = None
    queue: str | None = None
    awaiting_disposition: bool = False
    """In wrap-up for a call of a queue that requires a disposition, none given yet."""
    _wrap_timer: asyncio.TimerHandle | None = None
    _hold_timer: asyncio.TimerHandle | None = None

    @property
    def held(self) -> bool:
        """Wrap-up holds the agent for a required disposition (logout and pause wait)."""
        return self.state is AgentState.WRAP_UP and self.awaiting_disposition

    @property
    def id(self) -> str:
        """The agent's configured id."""
        return self.config.id

    @property
    def logged_in(self) -> bool:
        """True when the agent counts as staffing its queues (paused and wrap-up included;
        unreachable agents are left out: their headset cannot ring)."""
        return self.state not in (AgentState.LOGGED_OUT, AgentState.UNREACHABLE)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view for the API and live statistics."""
        return {
            "id": self.id,
            "name": self.config.name,
            "endpoint": self.config.endpoint,
            "state": self.state.value,
            "reason": self.reason,
            "since": self.state_since.isoformat(),
            "reachable": self.reachable,
            "calls_answered": self.calls_answered,
            "consecutive_no_answers": self.consecutive_no_answers,
            "pending": self.pending,
            "awaiting_disposition": self.awaiting_disposition,
            "call_id": self.call_id,
            "queue": self.queue,
            "queues": list(self.config.queues),
        }


class AgentBoard:
    """All agents and every operation that changes their state.

    ``on_change(agent)`` runs after each transition (the router uses it to wake itself).
    """

    def __init__(
        self,
        agents: Sequence[AgentConfig],
        log: InteractionLog,
        *,
        pause_reasons: Sequence[str] = ("break", "no_answer"),
        login_code: str = "*45",
        pause_code: str = "*46",
        clock: Callable[[], datetime] = utcnow,
        on_change: Callable[[Agent], None] | None = None,
    ) -> None:
        self._log = log
        self._clock = clock
        self.pause_reasons = tuple(pause_reasons)
        self.login_code = login_code
        self.pause_code = pause_code
        self.on_change = on_change
        now = clock()
        self.agents: dict[str, Agent] = {a.id: Agent(a, state_since=now) for a in agents}
        # agents restore() put back on_call, until their call is adopted or released
        self.awaiting_adoption: set[str] = set()
        self._by_endpoint = {a.endpoint: a.id for a in agents}

    def get(self, agent_id: str) -> Agent:
        """The agent with this id; :class:`AgentStateError` when there is none."""
        try:
            return self.agents[agent_id]
        except KeyError:
            raise AgentStateError(f"unknown agent {agent_id!r}") from None

    def by_endpoint(self, endpoint: str) -> Agent:
        """The agent whose headset is ``endpoint``."""
        agent_id = self._by_endpoint.get(endpoint)
        if agent_id is None:
            raise AgentStateError(f"no agent has endpoint {endpoint!r}")
        return self.agents[agent_id]

    # -- the roster (agents managed through the HTTP API) --------------------------------

    def add_agent(self, config: AgentConfig, *, reachable: bool = False) -> Agent:
        """Add a logged-out agent (its headset counts as unregistered until told otherwise)."""
        if config.id in self.agents or config.endpoint in self._by_endpoint:
            raise AgentStateError(f"agent {config.id} or endpoint {config.endpoint} exists")
        agent = Agent(config, state_since=self._clock(), reachable=reachable)
        self.agents[config.id] = agent
        self._by_endpoint[config.endpoint] = config.id
        return agent

    def replace_config(self, config: AgentConfig) -> Agent:
        """Give an agent new settings (name, skills, queues, wrap-up); same id and endpoint."""
        agent = self.get(config.id)
        if agent.config.endpoint != config.endpoint:
            raise AgentStateError(f"agent {config.id}: the endpoint cannot change")
        agent.config = config
        return agent

    def remove_agent(self, agent_id: str) -> None:
        """Remove an agent that is logged out (log it out first)."""
        agent = self.get(agent_id)
        if agent.state is not AgentState.LOGGED_OUT:
            raise AgentStateError(f"agent {agent_id} is {agent.state}, not logged out")
        self._cancel_wrap_up(agent)
        del self.agents[agent_id]
        del self._by_endpoint[agent.config.endpoint]

    # -- operations asked for by people (API, feature codes) and the PBX (contact status) --

    def login(self, agent_id: str) -> AgentState:
        """Log an agent in: available, or unreachable while its headset is not registered."""
        agent = self.get(agent_id)
        if agent.pending == "logout":
            agent.pending = None
            return agent.state
        if agent.state is not AgentState.LOGGED_OUT:
            raise AgentStateError(f"agent {agent_id} is already logged in")
        agent.idle_since = self._clock()
        self._transition(agent, self._rest_state(agent), "login")
        return agent.state

    def logout(self, agent_id: str) -> AgentState:
        """Log an agent out (after its current call when it rings or talks)."""
        agent = self.get(agent_id)
        if agent.state is AgentState.LOGGED_OUT:
            raise AgentStateError(f"agent {agent_id} is not logged in")
        if agent.state in BUSY_STATES or agent.held:
            agent.pending = "logout"
            return agent.state
        self._cancel_wrap_up(agent)
        self._transition(agent, AgentState.LOGGED_OUT, "logout")
        return agent.state

    def pause(self, agent_id: str, reason: str) -> AgentState:
        """Pause an agent with a configured reason (after its current call when busy)."""
        agent = self.get(agent_id)
        if reason not in self.pause_reasons:
            raise AgentStateError(
                f"unknown pause reason {reason!r} (configured: {', '.join(self.pause_reasons)})"
            )
        if agent.state is AgentState.LOGGED_OUT:
            raise AgentStateError(f"agent {agent_id} is not logged in")
        if agent.state in BUSY_STATES or agent.held:
            agent.pending = f"pause:{reason}"
            return agent.state
        if agent.state is AgentState.PAUSED:
            agent.reason = reason
            return agent.state
        self._cancel_wrap_up(agent)
        agent.reason = reason
        self._transition(agent, AgentState.PAUSED, reason)
        return agent.state

    def unpause(self, agent_id: str) -> AgentState:
        """End a pause (or cancel a pending one)."""
        agent = self.get(agent_id)
        if agent.pending and agent.pending.startswith("pause:"):
            agent.pending = None
            return agent.state
        if agent.state is not AgentState.PAUSED:
            raise AgentStateError(f"agent {agent_id} is not paused")
        agent.consecutive_no_answers = 0
        self._transition(agent, self._rest_state(agent), "unpause")
        return agent.state

    def feature_code(self, endpoint: str, code: str) -> AgentState:
        """Apply a code dialed on a headset: login code toggles login, pause code toggles
        pause (with the first configured reason). Returns the agent's new state."""
        agent = self.by_endpoint(endpoint)
        if code == self.login_code:
            if agent.state is AgentState.LOGGED_OUT:
                return self.login(agent.id)
            return self.logout(agent.id)
        if code == self.pause_code:
            if agent.state is AgentState.PAUSED:
                return self.unpause(agent.id)
            return self.pause(agent.id, self.pause_reasons[0])
        raise AgentStateError(f"unknown feature code {code!r}")

    def set_reachable(self, endpoint: str, reachable: bool) -> AgentState:
        """Record the headset's registration (from AMI contact status)."""
        agent = self.by_endpoint(endpoint)
        if agent.reachable == reachable:
            return agent.state
        agent.reachable = reachable
        if not reachable and agent.state is AgentState.AVAILABLE:
            self._transition(agent, AgentState.UNREACHABLE, "headset_unregistered")
        elif reachable and agent.state is AgentState.UNREACHABLE:
            self._transition(agent, AgentState.AVAILABLE, "headset_registered")
        return agent.state

    # -- operations of the ACD's calls ---------------------------------------------------

    def offer(self, agent_id: str, call_id: str, queue: str) -> None:
        """Reserve an available agent for a call: it is ringing from now on."""
        agent = self.get(agent_id)
        if agent.state is not AgentState.AVAILABLE:
            raise AgentStateError(f"agent {agent_id} is {agent.state}, not available")
        agent.call_id, agent.queue = call_id, queue
        self._transition(agent, AgentState.RINGING, "offered")

    def ring_failed(self, agent_id: str, max_no_answer: int) -> AgentState:
        """The agent did not answer: count it; ``max_no_answer`` in a row pause it."""
        agent = self._busy(agent_id, AgentState.RINGING)
        agent.consecutive_no_answers += 1
        if max_no_answer > 0 and agent.consecutive_no_answers >= max_no_answer:
            agent.pending = None
            agent.reason = "no_answer"
            self._transition(agent, AgentState.PAUSED, "no_answer")
        else:
            self._transition(agent, self._rest_state(agent), "no_answer")
        return agent.state

    def ring_cancelled(self, agent_id: str) -> AgentState:
        """The ring (or a just-answered leg) was stopped because the caller left: no count."""
        agent = self._busy(agent_id, AgentState.RINGING, AgentState.ON_CALL)
        self._transition(agent, self._rest_state(agent), "caller_left")
        return agent.state

    def connected(self, agent_id: str) -> None:
        """The agent answered and is bridged with the caller."""
        agent = self._busy(agent_id, AgentState.RINGING)
        agent.consecutive_no_answers = 0
        agent.calls_answered += 1
        self._transition(agent, AgentState.ON_CALL, "answered")

    def call_ended(self, agent_id: str, wrap_up_s: float, *,
                   disposition_max: float | None = None) -> None:
        """The agent's call ended: wrap-up for ``wrap_up_s`` seconds, then the rest state.
        ``disposition_max``: the queue requires a disposition; wrap-up lasts until it is given
        (:meth:`disposed`), at least ``wrap_up_s`` and at most ``disposition_max`` seconds."""
        agent = self._busy(agent_id, AgentState.ON_CALL)
        now = self._clock()
        agent.last_call_end = agent.idle_since = now
        if wrap_up_s <= 0 and disposition_max is None:
            self._transition(agent, self._rest_state(agent), "call_ended")
            return
        self._transition(agent, AgentState.WRAP_UP, "call_ended")
        self._start_wrap_up(agent, now, wrap_up_s, disposition_max)

    def _start_wrap_up(self, agent: Agent, ended_at: datetime, wrap_up_s: float,
                       disposition_max: float | None) -> None:
        """The wrap-up timers of a call that ended at ``ended_at`` (now, or before a restart:
        only what is left of each runs)."""
        elapsed = max(0.0, (self._clock() - ended_at).total_seconds())
        agent.wrap_up_until = ended_at + timedelta(seconds=max(wrap_up_s, 0.0))
        loop = asyncio.get_running_loop()
        if wrap_up_s > elapsed:
            agent._wrap_timer = loop.call_later(wrap_up_s - elapsed, self._wrap_up_done,
                                                agent.id)
        if disposition_max is not None:
            agent.awaiting_disposition = True
            agent._hold_timer = loop.call_later(
                max(0.0, max(disposition_max, wrap_up_s) - elapsed), self._disposition_missing,
                agent.id)

    def in_wrap_up_for(self, call_id: str) -> Agent | None:
        """The agent in wrap-up after ``call_id``, if any."""
        return next((a for a in self.agents.values()
                     if a.state is AgentState.WRAP_UP and a.call_id == call_id), None)

    def disposed(self, agent_id: str) -> None:
        """The call the agent wraps up got its disposition: a hold for it ends (at once when
        the wrap-up time is over already)."""
        agent = self._busy(agent_id, AgentState.WRAP_UP)
        if not agent.awaiting_disposition:
            return
        agent.awaiting_disposition = False
        if agent._hold_timer is not None:
            agent._hold_timer.cancel()
            agent._hold_timer = None
        if agent._wrap_timer is None:
            self._transition(agent, self._rest_state(agent), "disposition_given")

    # -- after a daemon restart (callcontrol.acd.adopt) ---------------------------------

    def restore(self, agent_id: str, state: str, *, reason: str = "",
                call_id: str | None = None, queue: str | None = None,
                held: HeldWrapUp | None = None) -> AgentState:
        """Put a logged-out agent back in the state its journal showed last (``state``, with
        its pause ``reason`` or its ``call_id``/``queue``). ``on_call`` keeps the call until it
        is adopted or released; ``wrap_up`` held for a required disposition (``held``: the
        call has none yet) comes back held, with what is left of its timers (a hold already
        over records ``missing`` at once); ``ringing`` and any other ``wrap_up`` come back as
        the rest state."""
        agent = self.get(agent_id)
        if agent.state is not AgentState.LOGGED_OUT or state == AgentState.LOGGED_OUT:
            return agent.state
        if state == AgentState.ON_CALL and call_id:
            agent.call_id, agent.queue = call_id, queue
            self._transition(agent, AgentState.ON_CALL, "restored")
            self.awaiting_adoption.add(agent_id)
        elif state == AgentState.WRAP_UP and call_id and held is not None:
            agent.call_id, agent.queue = call_id, queue
            agent.last_call_end = agent.idle_since = held.ended_at
            self._transition(agent, AgentState.WRAP_UP, "restored")
            self._start_wrap_up(agent, held.ended_at, held.wrap_up_s, held.disposition_max)
        elif state == AgentState.PAUSED:
            agent.reason = reason if reason in self.pause_reasons else self.pause_reasons[0]
            self._transition(agent, AgentState.PAUSED, "restored")
        else:
            agent.idle_since = self._clock()
            self._transition(agent, self._rest_state(agent), "restored")
        return agent.state

    def adopt(self, agent_id: str, call_id: str, queue: str) -> None:
        """An adopted call is bridged with this agent: ``on_call`` with it (already so when
        :meth:`restore` gave the agent that call back)."""
        agent = self.get(agent_id)
        if agent.state is AgentState.ON_CALL and agent.call_id == call_id:
            self.awaiting_adoption.discard(agent_id)
            return
        if agent.state is not AgentState.LOGGED_OUT:
            raise AgentStateError(f"agent {agent_id} is {agent.state}, cannot adopt {call_id}")
        agent.call_id, agent.queue = call_id, queue
        self._transition(agent, AgentState.ON_CALL, "adopted")

    def release_unadopted(self, agent_id: str) -> None:
        """A call restored with the agent was not adopted (gone): back to the rest state."""
        agent = self._busy(agent_id, AgentState.ON_CALL)
        self.awaiting_adoption.discard(agent_id)
        agent.idle_since = self._clock()
        self._transition(agent, self._rest_state(agent), "call_not_adopted")

    def shutdown(self) -> None:
        """Cancel every wrap-up timer (the daemon is stopping)."""
        for agent in self.agents.values():
            self._cancel_wrap_up(agent)

    # -- internals ------------------------------------------------------------------------

    def _wrap_up_done(self, agent_id: str) -> None:
        agent = self.agents[agent_id]
        agent._wrap_timer = None
        if agent.state is AgentState.WRAP_UP and not agent.awaiting_disposition:
            self._transition(agent, self._rest_state(agent), "wrap_up_ended")

    def _disposition_missing(self, agent_id: str) -> None:
        """``wrap_up_max`` passed without a required disposition: ``missing`` on the call."""
        agent = self.agents[agent_id]
        agent._hold_timer = None
        if not agent.held or agent.call_id is None:
            return
        now = self._clock()
        self._log.append(disposition_update(agent.call_id, MISSING, None, None, "system", now))
        self._log.append(CallEvent(call_id=agent.call_id, kind="disposition_missing", at=now,
                                   data={"agent_id": agent.id, "queue": agent.queue}))
        agent.awaiting_disposition = False
        self._cancel_wrap_up(agent)
        self._transition(agent, self._rest_state(agent), "disposition_missing")

    def _cancel_wrap_up(self, agent: Agent) -> None:
        agent.awaiting_disposition = False
        for name in ("_wrap_timer", "_hold_timer"):
            timer = getattr(agent, name)
            if timer is not None:
                timer.cancel()
                setattr(agent, name, None)

    def _busy(self, agent_id: str, *states: AgentState) -> Agent:
        agent = self.get(agent_id)
        if agent.state not in states:
            raise AgentStateError(f"agent {agent_id} is {agent.state}, expected "
                                  f"{'/'.join(states)}")
        return agent

    def _rest_state(self, agent: Agent) -> AgentState:
        """Where an agent goes when nothing holds it: pending logout or pause first."""
        pending, agent.pending = agent.pending, None
        if pending == "logout":
            return AgentState.LOGGED_OUT
        if pending is not None:
            agent.reason = pending.removeprefix("pause:")
            return AgentState.PAUSED
        return AgentState.AVAILABLE if agent.reachable else AgentState.UNREACHABLE

    def _transition(self, agent: Agent, to: AgentState, reason: str) -> None:
        """The one place agent state changes: validate, log, journal, notify."""
        before = agent.state
        if to not in TRANSITIONS[before]:
            raise AgentStateError(f"agent {agent.id}: {before} -> {to} is not allowed")
        now = self._clock()
        seconds = max(0.0, (now - agent.state_since).total_seconds())
        record: dict[str, Any] = {"from": before.value, "to": to.value, "reason": reason,
                                  "seconds": round(seconds, 3)}
        if agent.call_id is not None:
            record.update(call_id=agent.call_id, queue=agent.queue)
        if AgentState.PAUSED in (before, to):
            # Entering a pause, callers set agent.reason first; leaving one, it is still set.
            record["pause_reason"] = agent.reason
        agent.state, agent.state_since = to, now
        if to not in (AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP):
            agent.call_id = agent.queue = None
        if to is not AgentState.PAUSED:
            agent.reason = ""
        if to is not AgentState.WRAP_UP:
            agent.wrap_up_until = None
            agent.awaiting_disposition = False
        _log.info("agent_state", agent_id=agent.id, **record)
        self._log.append(AgentEvent(agent_id=agent.id, kind="state", data=record, at=now))
        if self.on_change is not None:
            self.on_change(agent)
