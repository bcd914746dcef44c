"""The ACD on the daemon: wires :class:`~callcontrol.acd.router.Acd` to the PBX, the event
router, AMI contact status, headset feature codes and the HTTP API.

    caller task (flow ``queue`` step)  --> queue_handler --> serve_in_queue(session, ..., acd)
    caller task (flow ``dial`` step)   --> dial_handler  --> ring, bridge, wait (this module)
    ACD callback legs                  --> claimed in the EventRouter for the service's inbox
                                           --> pump task --> acd.callbacks.deliver(event)
    ChannelEntered("feature", CODE, ENDPOINT) --> start_feature_code --> owned task:
                                           answer, board.feature_code, confirmation, hang up
    AMI ContactStatus / (re)connect    --> board.set_reachable(endpoint, reachable)
    daemon restart                     --> restore_agents, restore_callbacks (start),
                                           adoption (recovery): callcontrol.acd.adopt,
                                           callcontrol.acd.callback_store

Every task here is owned by :class:`AcdService` and cancelled by :meth:`AcdService.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.adopt import Adoption, TimelineEntry, plan_adoption, restore_agents
from callcontrol.acd.agents import BUSY_STATES, AgentState, AgentStateError
from callcontrol.acd.callback import callback_bridge_id
from callcontrol.acd.callback_store import RestoredCallbacks, restore_callbacks
from callcontrol.acd.connect import serve_in_queue
from callcontrol.acd.events import leg_answered, leg_failed
from callcontrol.acd.router import Acd
from callcontrol.acd.stats import live_stats, period_stats
from callcontrol.ami.protocol import AmiEvent, ContactStatus
from callcontrol.callctx import CallContext, DialRequest, QueueRequest, QueueResult
from callcontrol.config import AgentConfig, Config
from callcontrol.errors import ApiError, CallControlError, TelephonyError
from callcontrol.events_router import EventRouter, Inbox, receive
from callcontrol.logging import get_logger
from callcontrol.store.records import AgentEvent, CallEvent, InteractionLog, Record, new_id
from callcontrol.telephony import (
    ChannelEntered,
    ChannelHungUp,
    ChannelInfo,
    ChannelLeftApp,
    DialEnded,
    PlaybackFinished,
    Telephony,
    TelephonyEvent,
    utcnow,
)

_log = get_logger(__name__)

UNREACHABLE_CONTACT = frozenset({"Unreachable", "Removed"})
"""AMI contact statuses that mean the headset cannot ring."""

FEATURE_SOUNDS: Mapping[AgentState, Sequence[str]] = {
    AgentState.AVAILABLE: ("sound:agent-loginok",),
    AgentState.UNREACHABLE: ("sound:agent-loginok",),
    AgentState.LOGGED_OUT: ("sound:agent-loggedoff",),
    AgentState.PAUSED: ("sound:beep",),
}
"""What an agent hears after a feature code, by the state it left the agent in (others:
a beep: the change waits for the current call to end)."""

FEATURE_ERROR_SOUND = ("sound:beeperr",)
FEATURE_PLAY_TIMEOUT = 10.0

_BUSY_CAUSES = frozenset({17, 21})
_NO_ANSWER_CAUSES = frozenset({18, 19})


class ContactSource(Protocol):
    """Who can list the PBX's registered contacts (the AMI client)."""

    async def contact_status(self) -> dict[str, str]:
        """Endpoint -> best contact status; unregistered endpoints are missing."""


class TodayLog:
    """The log the ACD writes to: passes every record on and keeps the ACD's records of the
    current day (site time zone), from which :meth:`AcdService.queues_json` computes the day's
    figures with the same function as any period report."""

    def __init__(self, inner: InteractionLog, tz: ZoneInfo) -> None:
        self._inner = inner
        self._tz = tz
        self.day_start: datetime = _midnight(utcnow(), tz)
        self.records: list[Record] = []

    def append(self, record: Record) -> None:
        """Journal ``record`` and keep it for today's figures."""
        self._inner.append(record)
        if not isinstance(record, CallEvent | AgentEvent):
            return
        start = _midnight(record.at, self._tz)
        if start > self.day_start:
            self.day_start = start
            self.records = []
        self.records.append(record)


def _midnight(at: datetime, tz: ZoneInfo) -> datetime:
    local = at.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


class _CallbackTelephony:
    """The telephony port as the ACD's own callback tasks use it: every channel they create is
    claimed in the event router for the service's inbox before it exists."""

    def __init__(self, inner: Telephony, claim: Callable[[str], None],
                 release: Callable[[str], None]) -> None:
        self._inner = inner
        self._claim = claim
        self._release = release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create_channel(
        self,
        endpoint: str,
        channel_id: str,
        app_args: Sequence[str],
        *,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        """Claim ``channel_id``, then create it (released again when creation fails)."""
        self._claim(channel_id)
        try:
            await self._inner.create_channel(endpoint, channel_id, app_args,
                                             caller_id=caller_id, variables=variables)
        except BaseException:
            self._release(channel_id)
            raise


def outbound_refusal(config: Config, request: DialRequest) -> str | None:
    """The toll-fraud guard of a ``dial`` to ``number:``: why it is refused, or ``None``. A
    flow's number must match ``security.outbound_allow.flows``; a blind transfer's number was
    checked against the token role's patterns by the API."""
    number = request.to.partition(":")[2]
    if request.transfer or config.security.outbound_allow.permits_dial(number):
        return None
    return f"{number} is not in security.outbound_allow.flows"


class AcdService:
    """The ACD as the daemon runs it (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        telephony: Telephony,
        log: InteractionLog,
        router: EventRouter,
        *,
        contacts: ContactSource | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.telephony = telephony
        self.router = router
        self.contacts = contacts
        self.today = TodayLog(log, ZoneInfo(config.site.timezone))
        self._callback_inbox: Inbox = asyncio.Queue()
        self.acd = Acd(
            config.agents, config.queues, log=self.today, post=self._post,
            telephony=_CallbackTelephony(telephony, self._claim_callback_leg,
                                         self._release_callback_leg),
            settings=config.acd, clock=clock, seed=config.acd.random_seed,
        )
        self._endpoints = {a.endpoint for a in config.agents}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the router task and the pump of callback-leg events."""
        await self.acd.start()
        self._own(self._pump_callback_events(), "acd-callback-events")

    async def close(self) -> None:
        """Stop the router, callbacks, feature-code tasks and wrap-up timers."""
        await self.acd.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _own(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- calls --------------------------------------------------------------------------------

    async def queue_handler(self, session: CallContext, request: QueueRequest) -> QueueResult:
        """A flow's ``queue`` step: the caller's stay in the queue (in the caller's task)."""
        return await serve_in_queue(session, request, self.acd)

    async def dial_handler(self, session: CallContext, request: DialRequest) -> str:
        """A flow's ``dial`` step (or a blind transfer): ring the target, bridge it with the
        caller on answer and wait until one side hangs up. Returns ``next`` (the far end hung
        up first), ``busy``, ``no_answer`` or ``failed``."""
        kind, _, value = request.to.partition(":")
        agent_id: str | None = None
        if kind == "agent":
            agent = self.acd.board.agents.get(value)
            if agent is None:
                session.log("dial_refused", to=request.to, reason="unknown agent")
                return "failed"
            if agent.state is not AgentState.AVAILABLE or not agent.reachable:
                session.log("dial_refused", to=request.to, reason=f"agent {agent.state}")
                return "busy"
            endpoint, agent_id = f"PJSIP/{agent.config.endpoint}", agent.id
        elif kind == "endpoint" and value:
            endpoint = f"PJSIP/{value}"
        elif kind == "number" and value:
            refused = outbound_refusal(self.config, request)
            if refused:
                session.log("dial_refused", to=request.to, reason=refused)
                return "failed"
            trunks = self.config.acd.trunks
            trunk = request.via or next(iter(trunks), None)
            if trunk is None or trunk not in trunks:
                session.log("dial_refused", to=request.to,
                            reason=f"no trunk configured{f' named {trunk}' if trunk else ''}")
                return "failed"
            endpoint = trunks[trunk].format(number=value)
        else:
            session.log("dial_refused", to=request.to, reason="bad dial target")
            return "failed"
        return await _Dial(self.acd, session, request, endpoint, agent_id).run()

    # -- after a daemon restart (callcontrol.acd.adopt) -------------------------------------

    async def restore_agents(self, engine: AsyncEngine) -> dict[str, str]:
        """At start: every agent back in its last journaled state."""
        return await restore_agents(engine, self.acd.board)

    async def restore_callbacks(
        self, engine: AsyncEngine, *, ready: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """At start, after the agents: the callbacks a previous daemon left pending back in
        line at their places (callcontrol.acd.callback_store); returns how many. They are
        offered agents only once ``ready()`` returned (the PBX link is up) and the bridges of
        attempts the restart cut are gone."""
        self.acd.hold_callbacks()
        try:
            restored = await restore_callbacks(engine, self.acd)
        except BaseException:
            self.acd.release_callbacks()
            raise
        self._own(self._release_callbacks(restored, ready), "acd-callbacks-release")
        return len(restored.entries)

    async def _release_callbacks(
        self, restored: RestoredCallbacks, ready: Callable[[], Awaitable[None]] | None,
    ) -> None:
        if ready is not None:
            await ready()
        for call_id in restored.interrupted:  # else a new attempt could not create it
            with contextlib.suppress(TelephonyError):
                await self.telephony.destroy_bridge(callback_bridge_id(call_id))
        self.acd.release_callbacks()

    def adoption(
        self, *, call_id: str, caller_channel: str, caller_number: str,
        timeline: Sequence[TimelineEntry], channels: Mapping[str, ChannelInfo],
    ) -> Adoption | None:
        """Take back a queue caller a previous daemon left (waiting or bridged), or ``None``
        when the call was not in a queue."""
        return plan_adoption(self.acd, call_id=call_id, caller_channel=caller_channel,
                             caller_number=caller_number, timeline=timeline, channels=channels)

    def release_unadopted(self, live_call_ids: Collection[str]) -> list[str]:
        """Free agents restored ``on_call`` with a call that was not adopted."""
        return self.acd.release_unadopted(live_call_ids)

    # -- callback legs ----------------------------------------------------------------------

    def _post(self, event: TelephonyEvent) -> None:
        """Wake the call task owning ``event.channel_id`` (a call already gone drops it)."""
        if not self.router.post(event):
            _log.debug("acd_event_unrouted", channel_id=event.channel_id,
                       event=type(event).__name__)

    def _claim_callback_leg(self, channel_id: str) -> None:
        self.router.claim(channel_id, self._callback_inbox)

    def _release_callback_leg(self, channel_id: str) -> None:
        self.router.release(channel_id, self._callback_inbox)

    async def _pump_callback_events(self) -> None:
        while True:
            event = await self._callback_inbox.get()
            self.acd.callbacks.deliver(event)
            if isinstance(event, ChannelHungUp):
                self._release_callback_leg(event.channel_id)

    # -- headset feature codes ----------------------------------------------------------------

    def start_feature_code(self, event: ChannelEntered) -> None:
        """A headset dialed a feature code (Stasis args ``feature, CODE, ENDPOINT``)."""
        inbox: Inbox = asyncio.Queue()
        self.router.claim(event.channel_id, inbox)
        self._own(self._feature_code(event, inbox), f"feature-{event.channel_id}")

    async def _feature_code(self, event: ChannelEntered, inbox: Inbox) -> None:
        channel = event.channel_id
        code = event.args[1] if len(event.args) > 1 else ""
        endpoint = event.args[2] if len(event.args) > 2 else ""
        try:
            try:
                state = self.acd.board.feature_code(endpoint, code)
                media = FEATURE_SOUNDS.get(state, ("sound:beep",))
                _log.info("feature_code", endpoint=endpoint, code=code, state=state.value)
            except AgentStateError as exc:
                media = FEATURE_ERROR_SOUND
                _log.warning("feature_code_refused", endpoint=endpoint, code=code,
                             error=str(exc))
            await self.telephony.answer(channel)
            playback = f"feature-{channel}"
            await self.telephony.play(channel, media, playback)
            await _wait_playback(inbox, channel, playback, FEATURE_PLAY_TIMEOUT)
        except TelephonyError as exc:
            _log.warning("feature_code_failed", channel_id=channel, error=str(exc))
        finally:
            with contextlib.suppress(TelephonyError):
                await self.telephony.hangup(channel)
            self.router.release(channel, inbox)

    # -- AMI ----------------------------------------------------------------------------------

    async def on_ami_event(self, event: AmiEvent) -> None:
        """A headset's contact changed: re-read the truth and update its reachability."""
        if not isinstance(event, ContactStatus):
            return
        endpoint = event.endpoint or event.aor
        if endpoint not in self._endpoints:
            return
        reachable = event.status not in UNREACHABLE_CONTACT
        if not reachable and self.contacts is not None:
            # A contact replaced by a new registration is "Removed" after its successor was
            # "Created": ask for the endpoint's contacts as they are now.
            statuses = await self.contacts.contact_status()
            reachable = statuses.get(endpoint, "Unreachable") not in UNREACHABLE_CONTACT
        self.acd.board.set_reachable(endpoint, reachable)

    async def on_ami_connected(self) -> None:
        """After every AMI (re)connect: set every headset's reachability from its contacts."""
        if self.contacts is None:
            return
        statuses = await self.contacts.contact_status()
        for endpoint in self._endpoints:
            status = statuses.get(endpoint, "Unreachable")
            self.acd.board.set_reachable(endpoint, status not in UNREACHABLE_CONTACT)

    # -- the roster (agents managed through the HTTP API) ----------------------------------

    async def add_agent(self, config: AgentConfig) -> None:
        """Add a logged-out agent; its headset counts as registered only if AMI lists it."""
        reachable = False
        if self.contacts is not None:
            try:
                statuses = await self.contacts.contact_status()
            except CallControlError as exc:
                _log.warning("contact_status_failed", error=str(exc))
            else:
                status = statuses.get(config.endpoint, "Unreachable")
                reachable = status not in UNREACHABLE_CONTACT
        self.acd.add_agent(config, reachable=reachable)
        self._endpoints.add(config.endpoint)

    def update_agent(self, config: AgentConfig) -> None:
        """Apply new settings (name, skills, queues, wrap-up) to an agent."""
        self.acd.update_agent(config)

    def remove_agent(self, agent_id: str) -> None:
        """Log an agent out (refused while it rings or talks) and remove it."""
        agent = self.acd.board.get(agent_id)
        if agent.state in BUSY_STATES:
            raise AgentStateError(f"agent {agent_id} is {agent.state}")
        if agent.state is not AgentState.LOGGED_OUT:
            self.acd.board.logout(agent_id)
        self.acd.remove_agent(agent_id)
        self._endpoints.discard(agent.config.endpoint)

    def call_control(self, agent_id: str, action: str, target: str | None = None) -> None:
        """``hold``, ``unhold`` or ``transfer`` (to ``target``) the caller bridged with an agent.

        Raises :class:`AgentStateError` when the agent is not bridged with a caller.
        """
        if action == "hold":
            self.acd.hold(agent_id)
        elif action == "unhold":
            self.acd.unhold(agent_id)
        elif action == "transfer" and target is not None:
            self.acd.transfer(agent_id, target)
        else:
            raise ValueError(f"unknown call control {action!r}")

    # -- HTTP API -----------------------------------------------------------------------------

    def agents_json(self) -> list[dict[str, Any]]:
        """Every agent with its live state."""
        return [agent.snapshot() for agent in self.acd.board.agents.values()]

    def queues_json(self) -> list[dict[str, Any]]:
        """Every queue: live figures and today's figures (docs/queue-statistics.md)."""
        live = live_stats(self.acd)
        start = self.today.day_start
        end = start + timedelta(days=1)
        result = []
        for name, line in self.acd.lines.items():
            today = period_stats(self.today.records, name, line.config, start, end)
            body = asdict(today)
            body.pop("queue")
            result.append({"name": name, "strategy": line.config.strategy, **live[name],
                           "today": {"since": start.isoformat(), **body}})
        return result

    def agent_action(self, agent_id: str, action: str, reason: str | None) -> dict[str, Any]:
        """``login``/``logout``/``pause``/``unpause`` an agent; returns its state."""
        board = self.acd.board
        if agent_id not in board.agents:
            raise ApiError(404, "agent_not_found", "no such agent", {"agent_id": agent_id})
        if action == "pause":
            reason = reason or board.pause_reasons[0]
            if reason not in board.pause_reasons:
                raise ApiError(400, "invalid_reason", f"unknown pause reason {reason!r}",
                               {"allowed": list(board.pause_reasons)})
        operations: dict[str, Callable[[], AgentState]] = {
            "login": lambda: board.login(agent_id),
            "logout": lambda: board.logout(agent_id),
            "pause": lambda: board.pause(agent_id, reason or ""),
            "unpause": lambda: board.unpause(agent_id),
        }
        operation = operations.get(action)
        if operation is None:
            raise ApiError(400, "invalid_action", f"unknown agent action {action!r}")
        try:
            operation()
        except AgentStateError as exc:
            raise ApiError(409, "agent_state", str(exc),
                           {"agent_id": agent_id, "state": board.agents[agent_id].state.value}
                           ) from None
        return board.agents[agent_id].snapshot()


class _Dial:
    """One ``dial`` step, run in the caller's task: ring, bridge on answer, wait, clean up."""

    def __init__(self, acd: Acd, ctx: CallContext, request: DialRequest, endpoint: str,
                 agent_id: str | None) -> None:
        self.acd, self.ctx, self.request = acd, ctx, request
        self.endpoint, self.agent_id = endpoint, agent_id
        suffix = new_id()[:8]
        self.leg = f"{ctx.call_id}-dial-{suffix}"
        self.bridge_id = f"{ctx.call_id}-dial-{suffix}"
        self.leg_up = False
        self.bridged = False
        self.talk_from: float | None = None

    async def run(self) -> str:
        ctx, tel = self.ctx, self.ctx.telephony
        loop = asyncio.get_running_loop()
        board = self.acd.board
        if self.agent_id is not None:
            board.offer(self.agent_id, ctx.call_id, "")
        ctx.claim_channel(self.leg)
        ctx.log("dial_started", to=self.request.to, endpoint=self.endpoint, channel_id=self.leg)
        status = "failed"
        try:
            self.leg_up = True
            await tel.create_channel(self.endpoint, self.leg, ["dial", ctx.call_id],
                                     caller_id=self.request.caller_id or ctx.caller.number
                                     or None)
            status = await self._ring(self.request.timeout)
            if status != "answered":
                return status
            await tel.create_bridge(self.bridge_id)
            self.bridged = True
            await tel.add_to_bridge(self.bridge_id, ctx.channel_id)
            await tel.add_to_bridge(self.bridge_id, self.leg)
            if self.agent_id is not None:
                board.connected(self.agent_id)
                ctx.update_call(agent_id=self.agent_id)
            self.talk_from = loop.time()
            ctx.log("dial_answered", to=self.request.to)
            await self._wait_far_end_hangup()
            status = "next"
            return status
        except TelephonyError as exc:
            ctx.log("dial_error", to=self.request.to, error=str(exc))
            status = "failed"
            return status
        finally:
            await self._clean_up()
            talk_s = None if self.talk_from is None else round(loop.time() - self.talk_from, 3)
            ctx.log("dial_ended", to=self.request.to, status=status, talk_s=talk_s)

    async def _ring(self, seconds: float) -> str:
        """``answered``, ``busy``, ``no_answer`` or ``failed``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            event = await self.ctx.next_event(remaining)
            if event is None or event.channel_id != self.leg:
                continue
            if isinstance(event, ChannelEntered):  # ARI dials a channel once it is ours
                await self.ctx.telephony.dial(self.leg, timeout_s=math.ceil(seconds),
                                              caller_id=self.request.caller_id)
            elif leg_answered(event):
                return "answered"
            elif isinstance(event, DialEnded):
                return {"BUSY": "busy", "NOANSWER": "no_answer",
                        "CANCEL": "no_answer"}.get(event.status, "failed")
            elif leg_failed(event):
                self.leg_up = False
                if isinstance(event, ChannelHungUp):
                    if event.cause in _BUSY_CAUSES:
                        return "busy"
                    if event.cause in _NO_ANSWER_CAUSES:
                        return "no_answer"
                return "failed"
        return "no_answer"

    async def _wait_far_end_hangup(self) -> None:
        """Return when the dialed leg hangs up (the caller hanging up raises)."""
        while True:
            event = await self.ctx.next_event(None)
            if event is not None and event.channel_id == self.leg and isinstance(
                event, ChannelHungUp | ChannelLeftApp
            ):
                self.leg_up = False
                return

    async def _clean_up(self) -> None:
        tel = self.ctx.telephony
        if self.leg_up:
            with contextlib.suppress(TelephonyError):
                await tel.hangup(self.leg)
        if self.bridged:
            with contextlib.suppress(TelephonyError):
                await tel.destroy_bridge(self.bridge_id)
        self.ctx.release_channel(self.leg)
        if self.agent_id is not None:
            agent = self.acd.board.agents[self.agent_id]
            if agent.state is AgentState.RINGING:
                self.acd.board.ring_cancelled(self.agent_id)
            elif agent.state is AgentState.ON_CALL:
                wrap = agent.config.wrap_up
                self.acd.board.call_ended(self.agent_id, wrap if wrap is not None else 0.0)


async def _wait_playback(inbox: Inbox, channel: str, playback: str, seconds: float) -> None:
    """Until ``playback`` ends or ``channel`` hangs up, at most ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        if (event := await receive(inbox, remaining)) is None:
            return
        if isinstance(event, PlaybackFinished) and event.playback_id == playback:
            return
        if event.channel_id == channel and isinstance(event, ChannelHungUp | ChannelLeftApp):
            return


def build_acd(
    config: Config,
    telephony: Telephony,
    log: InteractionLog,
    router: EventRouter,
    *,
    contacts: ContactSource | None = None,
) -> AcdService:
    """The daemon's ACD: agents and queues from ``config``, callback legs claimed in
    ``router``, headset reachability read from ``contacts`` (the AMI client)."""
    return AcdService(config, telephony, log, router, contacts=contacts)
