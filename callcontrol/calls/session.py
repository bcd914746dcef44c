"""A call session: one call's state, owned by the one task that runs the call.

    live --caller hangs up / leaves the app / PBX shutdown cuts it--> gone
      \\--handed to the dialplan (shutdown drain, abort)--> in_dialplan
    in_dialplan --the channel leaves the app--> gone
    live | gone | in_dialplan --final row written--> closed

Every change goes through :meth:`CallSession._move`, which checks :data:`TRANSITIONS` (the one
table). What ended the call early (an abort, a PBX shutdown) is kept as :attr:`aborted`: its
outcome wins over the flow's.

The session implements :class:`~callcontrol.calls.context.CallContext`: the flow engine and the
ACD see the call only through it. A *service call* (a headset's feature code, the two legs of an
ACD callback) is a session too, one with no row of its own (``keeps_row=False``): it owns its
channels in the same router and reads the same kind of inbox. Messages for the call's channels
arrive in its inbox (routed by :class:`~callcontrol.calls.router.EventRouter`); nothing else
touches the call's state, so there are no locks. :class:`~callcontrol.calls.manager.CallManager`
runs the task.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from callcontrol.calls.context import (
    CallerHungUp,
    CallerInfo,
    CallRecordings,
    DialRequest,
    NoRecordings,
    PlaybackIds,
    QueueRequest,
    QueueResult,
)
from callcontrol.calls.inbox import AbortCall, Inbox, InboxEvent, inbox_reader
from callcontrol.calls.router import EventRouter
from callcontrol.clock import utcnow
from callcontrol.errors import CallControlError, TelephonyError
from callcontrol.store.records import (
    CallClosed,
    CallEvent,
    CallUpdated,
    InteractionLog,
    Outcome,
)
from callcontrol.telephony import (
    ChannelHungUp,
    ChannelLeftApp,
    PlaybackFinished,
    Telephony,
)


class CallState(StrEnum):
    """Where a call is in its life."""

    LIVE = "live"
    GONE = "gone"
    IN_DIALPLAN = "in_dialplan"
    CLOSED = "closed"


TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.LIVE: frozenset({CallState.GONE, CallState.IN_DIALPLAN, CallState.CLOSED}),
    CallState.GONE: frozenset({CallState.CLOSED}),
    # the channel leaves the app after the dialplan took it (the task may still be waiting)
    CallState.IN_DIALPLAN: frozenset({CallState.GONE, CallState.CLOSED}),
    CallState.CLOSED: frozenset(),
}
"""The one table of allowed call transitions (``from -> {to}``)."""


class CallStateError(CallControlError):
    """A call transition not in :data:`TRANSITIONS` (a bug, never a caller's doing)."""

    error_id = "call_state"


class CallAborted(CallerHungUp):
    """The daemon ends the call itself (PBX restart, shutdown): carries the outcome to record."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(cause=0)
        self.outcome: Outcome = outcome
        self.reason = reason


class TrackedTelephony:
    """The telephony port as one call sees it: remembers and logs the call's playbacks, and
    whether the caller was hung up (the end of the call then sends no second hangup).

    After a crash the restarted daemon finds the last playback id on the call's timeline and
    stops it, so the channel can leave the application at once.
    """

    def __init__(self, inner: Telephony, session: CallSession) -> None:
        self._inner = inner
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def play(
        self, channel_id: str, media: Sequence[str], playback_id: str, language: str | None = None
    ) -> None:
        self._session.active_playbacks.add(playback_id)
        self._session.log("playback_started", playback_id=playback_id, channel_id=channel_id,
                          media=list(media))
        await self._inner.play(channel_id, media, playback_id, language)

    async def stop_playback(self, playback_id: str) -> None:
        self._session.active_playbacks.discard(playback_id)
        await self._inner.stop_playback(playback_id)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._inner.hangup(channel_id, reason)
        if channel_id == self._session.channel_id:
            self._session.hangup_sent = True


QueueHandler = Callable[["CallSession", QueueRequest], Awaitable[QueueResult]]
DialHandler = Callable[["CallSession", DialRequest], Awaitable[str]]
FlowRunner = Callable[["CallSession"], Awaitable[Outcome]]
ServiceBody = Callable[["CallSession"], Awaitable[None]]
ServiceCalls = Callable[[str, Sequence[str], ServiceBody], "asyncio.Task[None]"]
"""Starts a service call: ``(key, channels, body)`` -> its task (``CallManager.start_service``)."""


@dataclass
class CallSession(PlaybackIds):
    """One call's state and its view of the world (implements ``CallContext``)."""

    call_id: str
    channel_id: str
    raw_telephony: Telephony
    caller: CallerInfo
    extension: str
    interaction_log: InteractionLog
    router: EventRouter
    clock: Callable[[], datetime] = utcnow
    language: str = "en"
    queue_handler: QueueHandler | None = None
    dial_handler: DialHandler | None = None
    inbox: Inbox = field(default_factory=asyncio.Queue)
    active_playbacks: set[str] = field(default_factory=set)
    state: CallState = CallState.LIVE
    # Set when the daemon or the PBX ended the call: its outcome wins over the flow's.
    aborted: CallAborted | None = None
    playback_seq: int = 0
    # Asterisk accepted a hangup of the caller's channel (its hangup event may still be on
    # the way): the end of the call does not ask again
    hangup_sent: bool = False
    # False for a service call (feature code, callback legs): no row, no timeline of its own
    keeps_row: bool = True
    # the call's other channels at its start (an adopted agent leg, a callback's customer leg)
    also_owns: Sequence[str] = ()
    _pushed: collections.deque[InboxEvent] = field(default_factory=collections.deque)
    _claimed: set[str] = field(default_factory=set)
    telephony: Telephony = field(init=False)
    recordings: CallRecordings = field(default_factory=NoRecordings)

    def __post_init__(self) -> None:
        self.telephony = TrackedTelephony(self.raw_telephony, self)
        self._read = inbox_reader(self.inbox)
        for channel_id in (self.channel_id, *self.also_owns):
            self.claim_channel(channel_id)

    def _move(self, to: CallState) -> None:
        """The one place a call changes state (checked against :data:`TRANSITIONS`)."""
        if to not in TRANSITIONS[self.state]:
            raise CallStateError(f"call {self.call_id}: {self.state} -> {to} is not allowed")
        self.state = to

    # -- CallContext ------------------------------------------------------------------
    def now(self) -> datetime:
        """The current time from the session's clock."""
        return self.clock()

    async def next_event(self, timeout: float | None) -> InboxEvent | None:
        """The next event of this call's channels, ``None`` after ``timeout`` seconds."""
        if self.state is CallState.GONE:
            raise CallerHungUp()
        message = self._pushed.popleft() if self._pushed else await self._read(timeout)
        if message is None:
            return None
        if isinstance(message, AbortCall):
            if message.hand_to_dialplan:
                await self.hand_to_dialplan()
            self.aborted = CallAborted(message.outcome, message.reason)
            raise self.aborted
        if isinstance(message, PlaybackFinished):
            self.active_playbacks.discard(message.playback_id)
        if isinstance(message, ChannelHungUp) and message.pbx_shutdown:
            # Asterisk is going down: the whole call is lost, whichever leg hears it first
            if message.channel_id == self.channel_id and self.state is CallState.LIVE:
                self._move(CallState.GONE)
            self.log("pbx_shutdown", cause=message.cause, channel_id=message.channel_id)
            self.aborted = CallAborted("lost", "cut by an Asterisk shutdown or restart")
            raise self.aborted
        if message.channel_id == self.channel_id and isinstance(
            message, ChannelHungUp | ChannelLeftApp
        ):
            self._move(CallState.GONE)
            if isinstance(message, ChannelHungUp):
                self.log("caller_hangup", cause=message.cause, cause_text=message.cause_text)
                raise CallerHungUp(message.cause)
            raise CallerHungUp()
        return message

    def push_back(self, event: InboxEvent) -> None:
        """Put ``event`` back so the next :meth:`next_event` returns it first."""
        self._pushed.appendleft(event)

    def claim_channel(self, channel_id: str) -> None:
        """Route ``channel_id``'s events to this call."""
        self._claimed.add(channel_id)
        self.router.claim(channel_id, self.inbox)

    def release_channel(self, channel_id: str) -> None:
        """Stop routing ``channel_id``'s events to this call."""
        self._claimed.discard(channel_id)
        self.router.release(channel_id, self.inbox)

    def log(self, kind: str, **data: Any) -> None:
        """Append an entry to this call's timeline (a service call keeps none)."""
        if self.keeps_row:
            self.interaction_log.append(CallEvent(call_id=self.call_id, kind=kind, data=data))

    def update_call(self, **fields: Any) -> None:
        """Change fields of this call's row."""
        self.interaction_log.append(CallUpdated(call_id=self.call_id, fields=fields))

    async def enter_queue(self, request: QueueRequest) -> QueueResult:
        """Hand the caller to the ACD."""
        if self.queue_handler is None:
            self.log("queue_unavailable", queue=request.name)
            return QueueResult(exit="no_agents")
        return await self.queue_handler(self, request)

    async def dial(self, request: DialRequest) -> str:
        """Connect the caller to another party (``dial`` step)."""
        if self.dial_handler is None:
            self.log("dial_unavailable", to=request.to)
            return "failed"
        return await self.dial_handler(self, request)

    # -- lifecycle helpers ---------------------------------------------------------------
    async def hand_to_dialplan(self) -> None:
        """Stop what plays and send the caller to the dialplan fallback."""
        if self.state is not CallState.LIVE:
            return
        for playing in list(self.active_playbacks):
            await quietly(self.raw_telephony.stop_playback(playing))
        self.active_playbacks.clear()
        await quietly(self.raw_telephony.continue_in_dialplan(self.channel_id))
        self._move(CallState.IN_DIALPLAN)
        self.log("handed_to_dialplan")

    async def hang_up_unless_ended(self, outcome: Outcome) -> None:
        """Hang the caller up at the end of the call, unless gone, handed to the dialplan,
        already hung up by the flow or lost with the PBX (nothing left to hang up)."""
        if self.state is CallState.LIVE and outcome != "lost" and not self.hangup_sent:
            await quietly(self.raw_telephony.hangup(self.channel_id))

    def release_all(self) -> None:
        """Release every channel this call claimed."""
        for channel_id in list(self._claimed):
            self.release_channel(channel_id)

    def close(self, outcome: Outcome, hangup_cause: str = "", reason: str = "") -> None:
        """Write the call's final row (once; a service call has none)."""
        if self.state is CallState.CLOSED:
            return
        self._move(CallState.CLOSED)
        if self.keeps_row:
            self.interaction_log.append(
                CallClosed(call_id=self.call_id, outcome=outcome, hangup_cause=hangup_cause,
                           reason=reason)
            )


async def quietly(aw: Awaitable[None]) -> None:
    """Await a PBX command whose failure changes nothing (the object may be gone)."""
    with contextlib.suppress(TelephonyError):
        await aw
