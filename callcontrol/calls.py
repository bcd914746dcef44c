"""Call sessions: one task per call owns that call's state.

    ChannelEntered(args=("inbound", ...)) --> CallManager.start_inbound --> task run_call()
        run_call:  CallOpened -> answer -> flow runner (IVR, then ACD through enter_queue)
                   -> hang up what is still up -> CallClosed(outcome)   (always, in finally)
    recovery (a call a previous daemon left open) --> CallManager.adopt --> task: the given
                   runner (callcontrol.acd.adopt) instead of answer + flow, then the same end

The session implements :class:`callcontrol.callctx.CallContext`: the flow engine and the ACD
see the call only through it. Events for the call's channels arrive in its inbox (routed by
:class:`callcontrol.events_router.EventRouter`); nothing else touches the call's state, so there
are no locks. Every call has a hard upper bound on its life (``run.call_max_seconds``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from callcontrol.callctx import (
    CallerHungUp,
    CallerInfo,
    DialRequest,
    QueueRequest,
    QueueResult,
)
from callcontrol.errors import NotFound, PbxUnreachable, TelephonyError
from callcontrol.events_router import EventRouter, Inbox, receive
from callcontrol.logging import get_logger
from callcontrol.store.records import (
    CallClosed,
    CallEvent,
    CallOpened,
    CallUpdated,
    InteractionLog,
    Outcome,
    new_id,
)
from callcontrol.telephony import (
    ChannelEntered,
    ChannelHungUp,
    ChannelLeftApp,
    PlaybackFinished,
    Telephony,
    TelephonyEvent,
    utcnow,
)

log = get_logger("callcontrol.calls")


class CallAborted(CallerHungUp):
    """The daemon ends the call itself (PBX restart, shutdown): carries the outcome to record."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(cause=0)
        self.outcome: Outcome = outcome
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class AbortCall(TelephonyEvent):
    """Posted into a call's inbox to make it end with ``outcome``."""

    outcome: Outcome
    reason: str
    hand_to_dialplan: bool = False


def playback_id_for(channel_id: str, seq: int) -> str:
    """The id of a call's ``seq``-th playback: derivable again after a daemon restart."""
    return f"pb-{channel_id}-{seq}"


class TrackedTelephony:
    """The telephony port as one call sees it: remembers and logs the call's playbacks.

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


QueueHandler = Callable[["CallSession", QueueRequest], Awaitable[QueueResult]]
DialHandler = Callable[["CallSession", DialRequest], Awaitable[str]]
FlowRunner = Callable[["CallSession"], Awaitable[Outcome]]


@dataclass
class CallSession:
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
    hung_up: bool = False
    handed_to_dialplan: bool = False
    # Set when the daemon or the PBX ended the call: its outcome wins over the flow's.
    aborted: CallAborted | None = None
    closed: bool = False
    playback_seq: int = 0
    _pushed: collections.deque[TelephonyEvent] = field(default_factory=collections.deque)
    _claimed: set[str] = field(default_factory=set)
    telephony: Telephony = field(init=False)

    def __post_init__(self) -> None:
        self.telephony = TrackedTelephony(self.raw_telephony, self)
        self.claim_channel(self.channel_id)

    # -- CallContext ------------------------------------------------------------------
    def now(self) -> datetime:
        """The current time from the session's clock."""
        return self.clock()

    def next_playback_id(self) -> str:
        """A fresh, derivable playback id for this call."""
        self.playback_seq += 1
        return playback_id_for(self.channel_id, self.playback_seq)

    async def next_event(self, timeout: float | None) -> TelephonyEvent | None:
        """The next event of this call's channels, ``None`` after ``timeout`` seconds."""
        if self.hung_up:
            raise CallerHungUp()
        if self._pushed:
            event = self._pushed.popleft()
        else:
            received = await receive(self.inbox, timeout)
            if received is None:
                return None
            event = received
        if isinstance(event, PlaybackFinished):
            self.active_playbacks.discard(event.playback_id)
        if isinstance(event, AbortCall):
            if event.hand_to_dialplan:
                await self.hand_to_dialplan()
            self.aborted = CallAborted(event.outcome, event.reason)
            raise self.aborted
        if isinstance(event, ChannelHungUp) and event.pbx_shutdown:
            # Asterisk is going down: the whole call is lost, whichever leg hears it first
            self.hung_up = self.hung_up or event.channel_id == self.channel_id
            self.log("pbx_shutdown", cause=event.cause, channel_id=event.channel_id)
            self.aborted = CallAborted("lost", "cut by an Asterisk shutdown or restart")
            raise self.aborted
        if event.channel_id == self.channel_id and isinstance(
            event, ChannelHungUp | ChannelLeftApp
        ):
            self.hung_up = True
            if isinstance(event, ChannelHungUp):
                self.log("caller_hangup", cause=event.cause, cause_text=event.cause_text)
                raise CallerHungUp(event.cause)
            raise CallerHungUp()
        return event

    def push_back(self, event: TelephonyEvent) -> None:
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
        """Append an entry to this call's timeline."""
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
        if self.hung_up or self.handed_to_dialplan:
            return
        for playback_id in list(self.active_playbacks):
            await _quietly(self.raw_telephony.stop_playback(playback_id))
        self.active_playbacks.clear()
        await _quietly(self.raw_telephony.continue_in_dialplan(self.channel_id))
        self.handed_to_dialplan = True
        self.log("handed_to_dialplan")

    def release_all(self) -> None:
        """Release every channel this call claimed."""
        for channel_id in list(self._claimed):
            self.release_channel(channel_id)

    def close(self, outcome: Outcome, hangup_cause: str = "", reason: str = "") -> None:
        """Write the call's final row (once)."""
        if self.closed:
            return
        self.closed = True
        self.interaction_log.append(
            CallClosed(call_id=self.call_id, outcome=outcome, hangup_cause=hangup_cause,
                       reason=reason)
        )


async def _quietly(aw: Awaitable[None]) -> None:
    with contextlib.suppress(TelephonyError):
        await aw


class CallManager:
    """Starts, tracks and ends call tasks; the app feeds it new channels (and, after a
    daemon restart, the calls it adopts)."""

    def __init__(
        self,
        telephony: Telephony,
        interaction_log: InteractionLog,
        router: EventRouter,
        flow_runner: FlowRunner,
        *,
        call_max_seconds: float = 4 * 3600.0,
        queue_handler: QueueHandler | None = None,
        dial_handler: DialHandler | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.telephony = telephony
        self.interaction_log = interaction_log
        self.router = router
        self.flow_runner = flow_runner
        self.call_max_seconds = call_max_seconds
        self.queue_handler = queue_handler
        self.dial_handler = dial_handler
        self.clock = clock
        self.sessions: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.accepting = True

    @property
    def active(self) -> int:
        """How many calls are in progress."""
        return len(self._tasks)

    def start_inbound(self, event: ChannelEntered) -> CallSession | None:
        """Open a call for a new inbound channel and start its task."""
        if not self.accepting:
            self._spawn_side(self.telephony.continue_in_dialplan(event.channel_id))
            return None
        sip_call_id = event.sip_call_id
        number = event.caller_number
        session = CallSession(
            call_id=new_id(),
            channel_id=event.channel_id,
            raw_telephony=self.telephony,
            caller=caller_info(number, event.caller_name),
            extension=event.extension,
            interaction_log=self.interaction_log,
            router=self.router,
            clock=self.clock,
            queue_handler=self.queue_handler,
            dial_handler=self.dial_handler,
        )
        self.interaction_log.append(
            CallOpened(
                call_id=session.call_id,
                channel_id=event.channel_id,
                sip_call_id=sip_call_id,
                caller_number=number,
                caller_name=event.caller_name,
                extension=event.extension,
                at=event.at,
            )
        )
        session.log("call_arrived", channel_id=event.channel_id, caller=number,
                    extension=event.extension, sip_call_id=sip_call_id)
        self.sessions[session.call_id] = session
        task = asyncio.create_task(self._run(session, self._answer_and_run_flow),
                                   name=f"call-{session.call_id}")
        self._tasks[session.call_id] = task
        return session

    def adopt(
        self, call_id: str, channel_id: str, *, caller_number: str, caller_name: str,
        extension: str, runner: FlowRunner, playbacks: int = 0,
    ) -> CallSession:
        """Track again a call a previous daemon left open (its row exists, its channel is
        still in our app): a new task for it runs ``runner`` instead of the flow, then the
        normal end of a call. ``playbacks``: how many the call had (new ids stay fresh)."""
        session = CallSession(
            call_id=call_id,
            channel_id=channel_id,
            raw_telephony=self.telephony,
            caller=caller_info(caller_number, caller_name),
            extension=extension,
            interaction_log=self.interaction_log,
            router=self.router,
            clock=self.clock,
            queue_handler=self.queue_handler,
            dial_handler=self.dial_handler,
            playback_seq=playbacks,
        )
        self.sessions[call_id] = session
        self._tasks[call_id] = asyncio.create_task(self._run(session, runner),
                                                   name=f"call-{call_id}")
        return session

    def hang_up_stray(self, channel_id: str) -> None:
        """Hang up a channel that no call owns."""
        self._spawn_side(self.telephony.hangup(channel_id))

    def _spawn_side(self, aw: Awaitable[None]) -> None:
        """Run a one-off PBX command owned by the manager (awaited at shutdown)."""
        key = f"side-{new_id()}"

        async def side() -> None:
            try:
                await aw
            except TelephonyError as exc:
                log.warning("side_command_failed", error=str(exc))
            finally:
                self._tasks.pop(key, None)

        self._tasks[key] = asyncio.create_task(side(), name=key)

    async def _answer_and_run_flow(self, session: CallSession) -> Outcome:
        await session.telephony.answer(session.channel_id)
        session.update_call(answered_at=session.now())
        session.log("answered")
        return await self.flow_runner(session)

    async def _run(self, session: CallSession, body: FlowRunner) -> None:
        structlog.contextvars.bind_contextvars(call_id=session.call_id,
                                               channel_id=session.channel_id)
        outcome: Outcome = "failed"
        cause = ""
        reason = ""
        try:
            async with asyncio.timeout(self.call_max_seconds):
                outcome = await body(session)
        except CallAborted as exc:
            outcome, reason = exc.outcome, exc.reason
        except CallerHungUp as exc:
            cause = str(exc.cause)
            outcome = "completed"
        except TimeoutError:
            outcome, reason = "failed", "call exceeded its maximum duration"
            session.log("call_max_duration", seconds=self.call_max_seconds)
        except PbxUnreachable as exc:
            outcome, reason = "lost", f"PBX unreachable: {exc}"
        except NotFound as exc:
            outcome, reason = "lost", f"channel gone: {exc}"
        except TelephonyError as exc:
            outcome, reason = "failed", str(exc)
            session.log("error", error=str(exc))
        except Exception as exc:  # the call must still get its final row
            log.exception("call_task_crashed")
            outcome, reason = "failed", f"internal error: {type(exc).__name__}"
            session.log("error", error=reason)
        finally:
            if session.aborted is not None:  # the flow may have caught it as a hangup
                outcome, reason = session.aborted.outcome, session.aborted.reason
            if not session.hung_up and not session.handed_to_dialplan and outcome != "lost":
                await _quietly(self.telephony.hangup(session.channel_id))
            session.log("call_ended", outcome=outcome, reason=reason)
            session.close(outcome, hangup_cause=cause, reason=reason)
            session.release_all()
            self.sessions.pop(session.call_id, None)
            self._tasks.pop(session.call_id, None)
            structlog.contextvars.clear_contextvars()
            log.info("call_closed", call_id=session.call_id, outcome=outcome)

    def abort(self, session: CallSession, outcome: Outcome, reason: str,
              hand_to_dialplan: bool = False) -> None:
        """Make a call end with ``outcome`` at its next wait."""
        session.inbox.put_nowait(AbortCall(channel_id=session.channel_id, outcome=outcome,
                                           reason=reason, hand_to_dialplan=hand_to_dialplan))

    async def drain(self, grace: float) -> None:
        """Stop taking calls, let calls finish for ``grace`` seconds, then hand the rest to
        the dialplan fallback (closed as ``interrupted``)."""
        self.accepting = False
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for session in list(self.sessions.values()):
            self.abort(session, "interrupted", "daemon shutdown: handed to the dialplan fallback",
                       hand_to_dialplan=True)
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)


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


