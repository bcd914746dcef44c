"""What a running flow (or the ACD) sees of the call it serves: the call context port.

The call session (``callcontrol.calls``) implements :class:`CallContext` for real calls; the flow
simulator implements it with a fake telephony. A context belongs to one call task: no locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from callcontrol.telephony import PlaybackFinished, Telephony, TelephonyEvent


class CallerHungUp(Exception):
    """Raised by :meth:`CallContext.next_event` once the caller's channel has hung up."""

    def __init__(self, cause: int = 16) -> None:
        super().__init__(f"caller hung up (cause {cause})")
        self.cause = cause


@dataclass(frozen=True)
class CallerInfo:
    """Who is calling: caller id as received, its E.164 form when derivable, withheld flag."""

    number: str = ""
    name: str = ""
    e164: str | None = None
    withheld: bool = False


@dataclass(frozen=True)
class QueueRequest:
    """A flow's ``queue`` step, handed to the ACD."""

    name: str
    priority: int = 0
    skills: Mapping[str, int] = field(default_factory=dict)
    max_wait: float | None = None
    announce_position: float | None = None
    moh: str | None = None
    callback: bool = False
    keys: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueResult:
    """How the caller left the queue: ``exit`` is ``timeout``, ``no_agents``, ``full``,
    ``after`` (agent hung up first), ``hangup`` (the caller hung up), ``callback`` (callback
    requested: the flow ends) or ``key:D`` (a queue ``keys`` digit was pressed)."""

    exit: str
    agent_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DialRequest:
    """A flow's ``dial`` step: ``to`` is ``agent:ID``, ``endpoint:NAME`` or ``number:+E164``."""

    to: str
    timeout: float = 30.0
    caller_id: str | None = None
    via: str | None = None
    # A blind transfer through the API: its number passed the token role's allowlist there;
    # a flow's number must match ``security.outbound_allow.flows``.
    transfer: bool = False


class CallContext(Protocol):
    """The call as the flow engine and the ACD see it."""

    call_id: str
    channel_id: str
    telephony: Telephony
    caller: CallerInfo
    extension: str
    language: str

    def now(self) -> datetime:
        """The current time (injectable: tests use a fixed clock), timezone-aware."""

    async def next_event(self, timeout: float | None) -> TelephonyEvent | None:
        """The next event for this call's channels; ``None`` when ``timeout`` seconds pass.

        Raises :class:`CallerHungUp` when the caller's channel hangs up.
        """

    def push_back(self, event: TelephonyEvent) -> None:
        """Put an event back at the head of the inbox (for the next step to see)."""

    def claim_channel(self, channel_id: str) -> None:
        """Route the events of another channel (an agent leg, a dialed party) to this call.

        Claim before creating the channel, so its first event is not missed."""

    def release_channel(self, channel_id: str) -> None:
        """Stop routing a claimed channel's events to this call."""

    def log(self, kind: str, **data: Any) -> None:
        """Append an entry to the call's timeline."""

    def update_call(self, **fields: Any) -> None:
        """Change fields of the call row (``flow``, ``flow_version``, ``tags``...)."""

    async def enter_queue(self, request: QueueRequest) -> QueueResult:
        """Hand the caller to the ACD; returns when the caller leaves the queue or its agent."""

    async def dial(self, request: DialRequest) -> str:
        """Connect the caller to another party; returns ``next``, ``busy``, ``no_answer`` or
        ``failed``."""


async def play_and_wait(
    ctx: CallContext, media: Sequence[str], playback_id: str, timeout: float = 30.0
) -> None:
    """Play ``media`` to the caller and wait until it ends or ``timeout`` seconds pass (for
    prompts played outside a flow step: apologies, goodbyes)."""
    await ctx.telephony.play(ctx.channel_id, media, playback_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        event = await ctx.next_event(left)
        if event is None or (
            isinstance(event, PlaybackFinished) and event.playback_id == playback_id
        ):
            break
