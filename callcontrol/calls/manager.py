"""The call manager: starts, adopts, aborts and drains call tasks.

    ChannelEntered(args=("inbound", ...)) --> start_inbound --> task:
        CallOpened -> answer -> flow runner (IVR, then ACD through enter_queue)
        -> hang up what is still up -> CallClosed(outcome)   (always, in finally)
    ChannelEntered(args=("feature", ...)) --> start_service --> task: the feature-code
        handler (the ACD) on a service call (a session with no row)
    the ACD's callback (agent leg, customer leg) --> start_service --> task: the callback
    recovery (a call a previous daemon left open) --> adopt --> task: the given runner
        (the ACD's adoption) instead of answer + flow, then the same end

Every call has a hard upper bound on its life (``run.call_max_seconds``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import structlog

from callcontrol.calls.context import CallerHungUp, CallRecordings, caller_info
from callcontrol.calls.inbox import AbortCall
from callcontrol.calls.router import EventRouter
from callcontrol.calls.session import (
    CallAborted,
    CallSession,
    DialHandler,
    FlowRunner,
    QueueHandler,
    ServiceBody,
)
from callcontrol.clock import utcnow
from callcontrol.errors import NotFound, PbxUnreachable, TelephonyError
from callcontrol.logging import get_logger
from callcontrol.store.records import CallOpened, InteractionLog, Outcome, new_id
from callcontrol.telephony import ChannelEntered, ChannelLeftApp, Telephony, TelephonyEvent

log = get_logger("callcontrol.calls")

FeatureHandler = Callable[[CallSession, ChannelEntered], Awaitable[None]]
"""Runs a headset's feature-code call (the ACD's): the session owns the channel."""
RecorderFactory = Callable[[CallSession], CallRecordings]
"""Gives a call session (one that keeps a row) its recordings."""


class CallManager:
    """Starts, tracks and ends call tasks: the router hands it the first event of every
    channel no call owns (:meth:`new_channel`); recovery hands it the calls it adopts."""

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
        feature_handler: FeatureHandler | None = None,
        recovering: Callable[[], bool] = lambda: False,
        recorder: RecorderFactory | None = None,
    ) -> None:
        self.telephony = telephony
        self.interaction_log = interaction_log
        self.router = router
        self.flow_runner = flow_runner
        self.call_max_seconds = call_max_seconds
        self.queue_handler = queue_handler
        self.dial_handler = dial_handler
        self.clock = clock
        self.feature_handler = feature_handler
        self.recovering = recovering
        self.recorder = recorder
        router.unowned = self.new_channel
        self.sessions: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._services: dict[str, asyncio.Task[None]] = {}
        self.accepting = True

    @property
    def active(self) -> int:
        """How many calls are in progress."""
        return len(self._tasks)

    def new_channel(self, event: TelephonyEvent) -> None:
        """An event of a channel no call owns: a new channel starts a call (or a feature
        code); anything else entering our app is hung up (unless recovery is sorting the
        channels out)."""
        if not isinstance(event, ChannelEntered) or event.replaced:
            return
        role = event.args[0] if event.args else ""
        if role == "inbound":
            self.start_inbound(event)
        elif role == "feature" and self.feature_handler is not None:
            handler = self.feature_handler
            self.start_service(f"feature-{event.channel_id}", [event.channel_id],
                               lambda session: handler(session, event))
        elif not self.recovering():
            log.warning("unexpected_channel", channel_id=event.channel_id, args=event.args)
            self.hang_up_stray(event.channel_id)

    def start_inbound(self, event: ChannelEntered) -> CallSession | None:
        """Open a call for a new inbound channel and start its task."""
        if not self.accepting:
            self._spawn_side(self.telephony.continue_in_dialplan(event.channel_id))
            return None
        sip_call_id = event.sip_call_id
        number = event.caller_number
        session = self._session(new_id(), event.channel_id, number, event.caller_name,
                                event.extension)
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
        extension: str, runner: FlowRunner, playbacks: int = 0, claims: Sequence[str] = (),
    ) -> CallSession:
        """Track again a call a previous daemon left open (its row exists, its channel is
        still in our app): a new task for it runs ``runner`` instead of the flow, then the
        normal end of a call. ``playbacks``: how many the call had (new ids stay fresh);
        ``claims``: its other channels (an agent leg), which the session claims at its start."""
        session = self._session(call_id, channel_id, caller_number, caller_name, extension,
                                playbacks, also_owns=claims)
        self.sessions[call_id] = session
        self._tasks[call_id] = asyncio.create_task(self._run(session, runner),
                                                   name=f"call-{call_id}")
        return session

    def start_service(
        self, key: str, channels: Sequence[str], body: ServiceBody,
    ) -> asyncio.Task[None]:
        """Run a service call (a feature code, an ACD callback's legs): a session with no row
        owning ``channels`` (claimed now, before any of them exists) runs ``body`` in a task
        the manager keeps until it ends (cancelled at the end of :meth:`drain`); its caller may
        cancel it earlier. ``key`` names the session and its task."""
        session = self._session(key, channels[0], "", "", "", keeps_row=False,
                                also_owns=channels[1:])
        task = asyncio.create_task(self._run_service(session, body), name=key)
        self._services[key] = task
        return task

    async def _run_service(self, session: CallSession, body: ServiceBody) -> None:
        try:
            await body(session)
        finally:
            session.close("completed")
            session.release_all()
            self._services.pop(session.call_id, None)

    def _session(self, call_id: str, channel_id: str, caller_number: str, caller_name: str,
                 extension: str, playbacks: int = 0, *, keeps_row: bool = True,
                 also_owns: Sequence[str] = ()) -> CallSession:
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
            keeps_row=keeps_row,
            also_owns=also_owns,
        )
        if self.recorder is not None and keeps_row:
            session.recordings = self.recorder(session)
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
            await session.hang_up_unless_ended(outcome)
            await self._finish_recordings(session)
            session.log("call_ended", outcome=outcome, reason=reason)
            session.close(outcome, hangup_cause=cause, reason=reason)
            session.release_all()
            self.sessions.pop(session.call_id, None)
            self._tasks.pop(session.call_id, None)
            structlog.contextvars.clear_contextvars()
            log.info("call_closed", call_id=session.call_id, outcome=outcome)

    @staticmethod
    async def _finish_recordings(session: CallSession) -> None:
        try:
            await session.recordings.finish()
        except Exception:  # the call must still get its final row
            log.exception("recording_finish_failed")

    def abort(self, session: CallSession, outcome: Outcome, reason: str,
              hand_to_dialplan: bool = False) -> None:
        """Make a call end with ``outcome`` at its next wait."""
        session.inbox.put_nowait(AbortCall(channel_id=session.channel_id, outcome=outcome,
                                           reason=reason, hand_to_dialplan=hand_to_dialplan))

    def hangup_unseen(self, session: CallSession) -> None:
        """The caller's channel left while the PBX link was down, Asterisk still running: end
        the call at its next wait as if the hangup had been heard now (its own outcome)."""
        session.log("hangup_unseen", reason="channel gone while the PBX link was down")
        session.inbox.put_nowait(ChannelLeftApp(channel_id=session.channel_id))

    async def drain(self, grace: float) -> None:
        """Stop taking calls, let calls finish for ``grace`` seconds, then hand the rest to
        the dialplan fallback (closed as ``interrupted``); last, cancel the service calls."""
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
        services = list(self._services.values())
        for task in services:  # their clean-up hangs up what they created
            task.cancel()
        if services:
            await asyncio.wait(services, timeout=5.0)
