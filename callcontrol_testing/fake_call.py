"""In-memory call contexts and a tiny switch, for unit tests of the ACD (and flows).

:class:`FakeCall` implements :class:`callcontrol.calls.context.CallContext` over an inbox that tests
(or :class:`FakeSwitch`) fill. :class:`FakeSwitch` plays the PBX around a
:class:`~callcontrol.fake_telephony.FakeTelephony`: it routes each event to the call that
owns (or claimed) its channel, else to a fallback (the ACD's callback runner), makes created
channels enter the application (``ChannelEntered``, as ARI's StasisStart) and dialed endpoints
behave as scripted: ``answer``, ``busy``, ``unavailable`` or ``ignore`` (rings until
hung up). Playbacks finish at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from datetime import datetime
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
from callcontrol.calls.inbox import AbortCall, Inbox, InboxEvent, InboxMessage, inbox_reader
from callcontrol.clock import utcnow
from callcontrol.fake_telephony import FakeTelephony
from callcontrol.telephony import (
    ChannelEntered,
    ChannelHungUp,
    ChannelStateChanged,
    DialEnded,
    PlaybackFinished,
)


class FakeCall(PlaybackIds):
    """A call context for tests: an inbox, a timeline, claimed channels, scripted dials."""

    def __init__(
        self,
        telephony: FakeTelephony,
        call_id: str,
        *,
        caller: CallerInfo | None = None,
        clock: Callable[[], datetime] = utcnow,
        enter_queue: Callable[[FakeCall, QueueRequest], Any] | None = None,
    ) -> None:
        self.call_id = call_id
        self.channel_id = f"{call_id}-caller"
        self.telephony = telephony
        self.caller = caller or CallerInfo()
        self.extension = "100"
        self.language = "en"
        self.claimed: set[str] = set()
        self.timeline: list[tuple[str, dict[str, Any]]] = []
        self.fields: dict[str, Any] = {}
        self.dials: list[DialRequest] = []
        self.dial_result = "next"
        self._clock = clock
        self._enter_queue = enter_queue
        self._inbox: Inbox = asyncio.Queue()
        self._read = inbox_reader(self._inbox)
        self._pushed: deque[InboxEvent] = deque()
        self._hung_up: ChannelHungUp | None = None
        self.recordings: CallRecordings = NoRecordings()

    def deliver(self, event: InboxMessage) -> None:
        """Put an event into the call's inbox."""
        self._inbox.put_nowait(event)

    def owns(self, channel_id: str) -> bool:
        """True for the caller's channel and every claimed channel."""
        return channel_id == self.channel_id or channel_id in self.claimed

    def now(self) -> datetime:
        """The test clock."""
        return self._clock()

    async def next_event(
        self, timeout: float | None
    ) -> InboxEvent | None:
        """The next event; raises :class:`CallerHungUp` once the caller's channel hung up."""
        if self._hung_up is not None:
            raise CallerHungUp(self._hung_up.cause)
        if self._pushed:
            return self._pushed.popleft()
        event = await self._read(timeout)
        if event is None or isinstance(event, AbortCall):
            return None
        if isinstance(event, ChannelHungUp) and event.channel_id == self.channel_id:
            self._hung_up = event
            raise CallerHungUp(event.cause)
        return event

    def push_back(self, event: InboxEvent) -> None:
        """Put an event back at the head of the inbox."""
        self._pushed.appendleft(event)

    def claim_channel(self, channel_id: str) -> None:
        """Route ``channel_id``'s events here."""
        self.claimed.add(channel_id)

    def release_channel(self, channel_id: str) -> None:
        """Stop routing ``channel_id``'s events here."""
        self.claimed.discard(channel_id)

    def log(self, kind: str, **data: Any) -> None:
        """Record a timeline entry."""
        self.timeline.append((kind, data))

    def update_call(self, **fields: Any) -> None:
        """Record call row fields."""
        self.fields.update(fields)

    async def enter_queue(self, request: QueueRequest) -> QueueResult:
        """Run the queue function given at construction."""
        if self._enter_queue is None:
            raise RuntimeError("this FakeCall was built without enter_queue")
        result: QueueResult = await self._enter_queue(self, request)
        return result

    async def dial(self, request: DialRequest) -> str:
        """Record the dial and return :attr:`dial_result`."""
        self.dials.append(request)
        return self.dial_result


class FakeSwitch:
    """Routes events to calls and scripts how dialed endpoints behave."""

    def __init__(self, telephony: FakeTelephony) -> None:
        self.telephony = telephony
        self.calls: list[FakeCall] = []
        self.behaviour: dict[str, str] = {}  # endpoint -> answer/busy/unavailable/ignore
        self.fallback: Callable[[InboxMessage], bool] | None = None
        self.endpoints: dict[str, str] = {}  # channel id -> endpoint
        self.unrouted: list[InboxMessage] = []
        telephony.on_command = self._on_command

    def add(self, call: FakeCall) -> FakeCall:
        """Register a call so events of its channels reach it."""
        self.calls.append(call)
        return call

    def post(self, event: InboxMessage) -> None:
        """Deliver an event to whoever owns its channel."""
        for call in self.calls:
            if call.owns(event.channel_id):
                call.deliver(event)
                return
        if self.fallback is not None and self.fallback(event):
            return
        self.unrouted.append(event)

    def later(self, event: InboxMessage) -> None:
        """Deliver an event on the next loop iteration (as the PBX would)."""
        asyncio.get_running_loop().call_soon(self.post, event)

    def dialed(self, endpoint: str) -> list[str]:
        """The channel ids created towards ``endpoint``, in order."""
        return [c for c, e in self.endpoints.items() if e == endpoint]

    def _on_command(self, name: str, args: dict[str, Any]) -> None:
        if name == "create_channel":
            self.endpoints[args["channel_id"]] = args["endpoint"]
            self.later(ChannelEntered(channel_id=args["channel_id"],
                                      args=tuple(args["app_args"])))
        elif name == "dial":
            channel = args["channel_id"]
            behaviour = self.behaviour.get(self.endpoints.get(channel, ""), "answer")
            if behaviour == "answer":
                self.later(ChannelStateChanged(channel_id=channel, state="Up"))
            elif behaviour == "busy":
                self.later(DialEnded(channel_id=channel, status="BUSY"))
            elif behaviour == "unavailable":
                self.later(DialEnded(channel_id=channel, status="CHANUNAVAIL"))
        elif name == "hangup":
            self.later(ChannelHungUp(channel_id=args["channel_id"]))
        elif name == "play":
            self.later(PlaybackFinished(channel_id=args["channel_id"],
                                        playback_id=args["playback_id"]))
