"""Dispositions: the wrap-up code (and free note) an agent gives a call of a queue.

    POST /api/calls/{id}/disposition  --> Dispositions.give
    headset: *48 then the code's digits --> Dispositions.from_headset --> give

A disposition is given while the agent who handled the call wraps it up (the API may act for
the agent: a supervisor, or the agent's own token). It lands on the call row (code, label,
note, who, when) and on the call's timeline (``disposition``), and ends a wrap-up hold of a
queue that requires one (:meth:`~callcontrol.acd.agents.AgentBoard.disposed`); a later code in
the same wrap-up replaces it. A code whose queue ``requires_note`` needs a note, so it cannot
come from the headset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from callcontrol.acd.agents import AgentBoard, AgentState, AgentStateError, disposition_update
from callcontrol.clock import utcnow
from callcontrol.config import QueueConfig
from callcontrol.errors import Forbidden, InvalidRequest, Refused, WrongState
from callcontrol.logging import get_logger
from callcontrol.store.records import CallEvent, InteractionLog

_log = get_logger(__name__)

MAX_NOTE = 1000
"""The longest note (characters)."""
MAX_BY = 128
"""The longest name of who gave a disposition (the column's width; longer token names are
cut)."""


class Dispositions:
    """Gives dispositions to calls in wrap-up (see the module docstring)."""

    def __init__(self, board: AgentBoard, queues: Mapping[str, QueueConfig],
                 log: InteractionLog, clock: Callable[[], datetime] = utcnow) -> None:
        self.board = board
        self.queues = queues
        self._log = log
        self._clock = clock

    def give(self, call_id: str, code: str, note: str | None, *, by: str,
             as_agent: str | None = None) -> dict[str, Any]:
        """Record ``code`` (and ``note``) for ``call_id``, whose agent is in wrap-up; ``by``
        names who gave it; ``as_agent``: only that agent's own call may be given one. Raises
        :class:`~callcontrol.errors.Refused` subclasses (``not_in_wrap_up``, ``forbidden``,
        ``no_dispositions``, ``invalid_disposition``, ``note_required``)."""
        agent = self.board.in_wrap_up_for(call_id)
        if agent is None:
            raise WrongState("not_in_wrap_up", "no agent is wrapping up this call",
                             {"call_id": call_id})
        if as_agent is not None and agent.id != as_agent:
            raise Forbidden("forbidden", "an agent token acts only on its own calls")
        queue = agent.queue or ""
        config = self.queues[queue].dispositions if queue in self.queues else None
        if config is None:
            raise WrongState("no_dispositions", f"queue {queue!r} has no disposition codes",
                             {"queue": queue})
        item = config.code(code)
        if item is None:
            raise InvalidRequest("invalid_disposition", f"unknown disposition code {code!r}",
                                 {"allowed": [c.code for c in config.codes]})
        note = (note or "").strip() or None
        if note is not None and len(note) > MAX_NOTE:
            raise InvalidRequest("invalid_body", f"note is longer than {MAX_NOTE} characters",
                                 {"fields": {"note": f"at most {MAX_NOTE} characters"}})
        if item.requires_note and note is None:
            raise InvalidRequest("note_required", f"disposition {code!r} needs a note",
                                 {"code": code})
        by, now = by[:MAX_BY], self._clock()
        self._log.append(disposition_update(call_id, code, item.label, note, by, now))
        self._log.append(CallEvent(call_id=call_id, kind="disposition", at=now, data={
            "code": code, "label": item.label, "note": note, "by": by, "agent_id": agent.id,
            "queue": queue}))
        _log.info("disposition", call_id=call_id, code=code, by=by, agent_id=agent.id,
                  note_chars=len(note or ""))
        self.board.disposed(agent.id)
        return {"call_id": call_id, "code": code, "label": item.label, "note": note, "by": by,
                "at": now.isoformat(), "agent": agent.snapshot()}

    def from_headset(self, endpoint: str, digits: str) -> AgentState:
        """The agent at ``endpoint`` dialed the disposition code then ``digits``: give them to
        the call it wraps up; the agent's state after. Raises :class:`AgentStateError` (the
        headset hears the error tone)."""
        agent = self.board.by_endpoint(endpoint)
        if agent.state is not AgentState.WRAP_UP or agent.call_id is None:
            raise AgentStateError(f"agent {agent.id} is {agent.state}, not in wrap-up")
        try:
            self.give(agent.call_id, digits, None, by=f"agent:{agent.id}", as_agent=agent.id)
        except Refused as exc:
            raise AgentStateError(f"disposition {digits!r} refused: {exc}") from None
        return agent.state
