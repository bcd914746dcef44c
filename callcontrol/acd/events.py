"""Domain events the ACD posts into a call's inbox (keyed by the caller's channel).

The router never touches a caller's channel itself: it wakes the call's task with one of these,
and that task (running :func:`callcontrol.acd.connect.serve_in_queue`) does the telephony.
"""

from __future__ import annotations

from dataclasses import dataclass

from callcontrol.calls.inbox import AcdMessage


@dataclass(frozen=True, kw_only=True)
class AgentOffered(AcdMessage):
    """An agent was reserved (now ``ringing``) for the queue entry ``entry_id``: ring it."""

    agent_id: str
    queue: str
    entry_id: str


@dataclass(frozen=True, kw_only=True)
class QueueChanged(AcdMessage):
    """Something about the queue changed that a waiting caller must re-check (staffing)."""

    queue: str


@dataclass(frozen=True, kw_only=True)
class HoldRequested(AcdMessage):
    """The agent asked to put the caller on hold (music on hold for the caller)."""

    agent_id: str


@dataclass(frozen=True, kw_only=True)
class UnholdRequested(AcdMessage):
    """The agent asked to take the caller off hold."""

    agent_id: str


@dataclass(frozen=True, kw_only=True)
class TransferRequested(AcdMessage):
    """The agent blind-transfers the caller to ``target``: ``queue:NAME``, ``agent:ID`` or
    ``number:+E164``."""

    agent_id: str
    target: str
