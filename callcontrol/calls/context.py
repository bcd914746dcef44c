"""What a running flow (or the ACD) sees of the call it serves: the call context port.

The call session (:mod:`callcontrol.calls.session`) implements :class:`CallContext` for real
calls; the flow simulator implements it with a fake telephony. A context belongs to one call
task: no locks. :class:`Deadline` is the one way to wait for events until a point in time
(:class:`MediaWait` the same for a playback or a recording that is stopped at its deadline), and
:func:`playback_id` the one scheme of playback ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, overload

from callcontrol.calls.inbox import InboxEvent, InboxMessage
from callcontrol.telephony import PlaybackFinished, Telephony


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


def caller_info(number: str, name: str) -> CallerInfo:
    """Build :class:`CallerInfo` from the caller id as Asterisk received it."""
    withheld = number.strip().lower() in ("", "anonymous", "unknown", "restricted", "private")
    digits = number.strip()
    e164: str | None = None
    if digits.startswith("+") and digits[1:].isdigit():
        e164 = digits
    elif digits.startswith("00") and digits[2:].isdigit():
        e164 = "+" + digits[2:]
    return CallerInfo(number=number, name=name, e164=e164, withheld=withheld)


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
    recording: str | None = None
    """The step's recording policy (overrides the queue's and the flow's)."""


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
    recording: str | None = None
    """The step's recording policy (overrides the flow's)."""


@dataclass(frozen=True)
class VoicemailMessage:
    """A voicemail message about to be recorded (a flow's ``record`` step): its recording row,
    already written (``recording_id``, the call's ``n``-th recording, ``path`` below the
    recordings root, ``policy``), and the ``name`` Asterisk records it under."""

    recording_id: str
    name: str
    n: int
    path: str
    policy: str


MIXING = "mixing"
"""The ARI bridge type of a call's bridge (Asterisk may bridge it natively)."""
MIXING_WITH_DTMF = "mixing,dtmf_events"
"""A mixing bridge that is never native, so every digit pressed in it is an ARI event."""


class TimelineEntry(Protocol):
    """One timeline entry as the store returns it (``CallEventRow``)."""

    @property
    def kind(self) -> str: ...

    @property
    def data(self) -> dict[str, Any]: ...

    @property
    def at(self) -> datetime: ...


class CallRecordings(Protocol):
    """The recordings of one call, as the flow engine, the ACD and the API drive them
    (implemented by :class:`callcontrol.recording.runtime.CallRecorder`; :class:`NoRecordings`
    when the daemon records nothing). ``by`` says who acted (``flow``, ``agent:ID``,
    ``api:NAME``) for the timeline."""

    @property
    def recording(self) -> bool:
        """Whether a recording of the call is in progress."""

    @property
    def bridge_kind(self) -> str:
        """The ARI bridge type for the current leg's bridge with an agent or a dialed party:
        ``mixing,dtmf_events`` when the leg's policy records or records on demand (the in-call
        codes must be heard: Asterisk's native RTP bridge, used for two calls with the same
        codec and no recording, passes RFC 4733 digits through and raises no DTMF event),
        else ``mixing``."""

    async def leg(self, *, flow: str | None = None, queue: str | None = None,
                  step: str | None = None) -> None:
        """A leg begins (the IVR, a queue, a dial): decide its policy once per call (logged),
        and play the consent prompt when it will be recorded."""

    async def start(self, by: str = "policy", *, on_demand: bool = False,
                    wait_consent: bool = True) -> bool:
        """Start recording when the leg's policy says so (``on_demand``: when it allows it);
        False when nothing started (not recorded, already recording). ``wait_consent``: wait
        for the consent prompt's end (only inside the call's task; the API starts it and goes
        on)."""

    async def stop(self, by: str) -> bool:
        """Stop the recording in progress; False when there was none."""

    async def mute(self, by: str, reason: str = "") -> bool:
        """Write silence into the recording in progress until :meth:`unmute`."""

    async def unmute(self, by: str, reason: str = "") -> bool:
        """Record sound again."""

    async def agent_digit(self, digit: str, by: str) -> None:
        """A digit the agent pressed during the call (the in-call codes)."""

    async def finish(self) -> None:
        """The call ends: finish what is recording."""

    def voicemail(self) -> VoicemailMessage | None:
        """A voicemail message is about to be recorded: write its row (the call's next ``n``,
        whatever the call's policy) and name the recording Asterisk is to make; ``None`` when
        the call keeps no recordings (the message stays where Asterisk writes it)."""

    def voicemail_ended(self, message: VoicemailMessage) -> None:
        """Asterisk stopped recording ``message`` (finished, failed, or the caller hung up):
        its file joins the recordings and its row gets the figures (in the background)."""

    def restore(self, timeline: Sequence[TimelineEntry], *, flow: str | None) -> None:
        """An adopted call (its task not started yet): carry on from what its ``timeline``
        says of its recordings (numbers taken, policy decisions, consent, mutes) and its entry
        ``flow``."""


class NoRecordings:
    """A call with no recorder: nothing is recorded."""

    @property
    def recording(self) -> bool:
        """Never."""
        return False

    @property
    def bridge_kind(self) -> str:
        """No codes to hear: the plain mixing bridge."""
        return MIXING

    async def leg(self, *, flow: str | None = None, queue: str | None = None,
                  step: str | None = None) -> None:
        """Nothing to decide."""

    async def start(self, by: str = "policy", *, on_demand: bool = False,
                    wait_consent: bool = True) -> bool:
        """Nothing starts."""
        return False

    async def stop(self, by: str) -> bool:
        """Nothing to stop."""
        return False

    async def mute(self, by: str, reason: str = "") -> bool:
        """Nothing to mute."""
        return False

    async def unmute(self, by: str, reason: str = "") -> bool:
        """Nothing to unmute."""
        return False

    async def agent_digit(self, digit: str, by: str) -> None:
        """Digits mean nothing here."""

    async def finish(self) -> None:
        """Nothing to finish."""

    def voicemail(self) -> VoicemailMessage | None:
        """No row: the message stays where Asterisk writes it."""
        return None

    def voicemail_ended(self, message: VoicemailMessage) -> None:
        """Nothing to finish."""

    def restore(self, timeline: Sequence[TimelineEntry], *, flow: str | None) -> None:
        """Nothing to carry on."""


class CallContext(Protocol):
    """The call as the flow engine and the ACD see it."""

    call_id: str
    channel_id: str
    telephony: Telephony
    caller: CallerInfo
    extension: str
    language: str
    recordings: CallRecordings

    def now(self) -> datetime:
        """The current time (injectable: tests use a fixed clock), timezone-aware."""

    def next_playback_id(self, label: str = "") -> str:
        """A fresh playback id for this call (see :func:`playback_id`)."""

    async def next_event(self, timeout: float | None) -> InboxEvent | None:
        """The next event for this call's channels; ``None`` when ``timeout`` seconds pass.

        Raises :class:`CallerHungUp` when the caller's channel hangs up.
        """

    def push_back(self, event: InboxEvent) -> None:
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


def playback_id(channel_id: str, seq: int, label: str = "") -> str:
    """The id of a call's ``seq``-th playback (``label``: what it is for, e.g. the flow step).

    Derivable again after a daemon restart: the call's timeline lists the ids it used."""
    return f"pb-{channel_id}-{label}-{seq}" if label else f"pb-{channel_id}-{seq}"


class PlaybackIds:
    """Mixin for call contexts: :meth:`next_playback_id` counts in :attr:`playback_seq`."""

    channel_id: str
    playback_seq: int = 0

    def next_playback_id(self, label: str = "") -> str:
        """A fresh, derivable playback id for this call."""
        self.playback_seq += 1
        return playback_id(self.channel_id, self.playback_seq, label)


class Deadline:
    """A point in the event loop's time to wait for events until.

    ``while (event := await deadline.next(ctx.next_event)) is not None: ...`` reads events until
    the deadline passes; :meth:`restart` moves it (a grace period after a stop request)."""

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self.at = self._loop.time() + seconds

    def left(self) -> float:
        """Seconds until the deadline (0.0 once passed)."""
        return max(self.at - self._loop.time(), 0.0)

    def restart(self, seconds: float) -> None:
        """Move the deadline to ``seconds`` from now."""
        self.at = self._loop.time() + seconds

    @overload
    async def next(
        self, read: Callable[[float | None], Awaitable[InboxEvent | None]]
    ) -> InboxEvent | None: ...

    @overload
    async def next(
        self, read: Callable[[float | None], Awaitable[InboxMessage | None]]
    ) -> InboxMessage | None: ...

    async def next(
        self, read: Callable[[float | None], Awaitable[InboxMessage | None]]
    ) -> InboxMessage | None:
        """The next event ``read(timeout)`` gives before the deadline, else ``None``."""
        return await read(self.left())


class MediaWait:
    """Waiting for a playback or a recording to end: when ``seconds`` pass it is stopped
    (``stop()``) and gets ``grace`` more seconds to report its end; :meth:`stop` does the same
    earlier (a barge-in). :meth:`next` gives ``None`` once that grace is over; :attr:`expired`
    says whether the deadline (not an early stop) stopped it."""

    def __init__(self, seconds: float, stop: Callable[[], Awaitable[None]], grace: float) -> None:
        self.deadline = Deadline(seconds)
        self._stop = stop
        self._grace = grace
        self.stopped = False
        self.expired = False

    async def stop(self) -> None:
        """Stop the media now (once) and wait at most ``grace`` more seconds for its end."""
        if not self.stopped:
            self.stopped = True
            await self._stop()
            self.deadline.restart(self._grace)

    async def next(
        self, read: Callable[[float | None], Awaitable[InboxEvent | None]]
    ) -> InboxEvent | None:
        """The next event before the deadline; past it, stops the media first; ``None`` once
        the media was stopped and its grace passed."""
        while (event := await self.deadline.next(read)) is None:
            if self.stopped:
                return None
            self.expired = True
            await self.stop()
        return event


async def play_and_wait(
    ctx: CallContext, media: Sequence[str], playback_id: str, timeout: float = 30.0
) -> None:
    """Play ``media`` to the caller and wait until it ends or ``timeout`` seconds pass (for
    prompts played outside a flow step: apologies, goodbyes)."""
    await ctx.telephony.play(ctx.channel_id, media, playback_id)
    deadline = Deadline(timeout)
    while (event := await deadline.next(ctx.next_event)) is not None:
        if isinstance(event, PlaybackFinished) and event.playback_id == playback_id:
            break
