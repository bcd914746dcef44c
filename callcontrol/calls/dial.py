"""The flow's ``dial`` step (and an agent's blind transfer), run in the caller's own task.

    DialStep(ctx, request) -- target --> agent:ID (asked of the ACD: DialAgents) | endpoint:NAME
                                         | number:+E164 (through a configured trunk)
        -> create the leg, ring, bridge with the caller on answer, wait until one side hangs
           up, clean up -> ``next`` | ``busy`` | ``no_answer`` | ``failed``

The step talks to the PBX only through the call's context; the ACD keeps the agent's state
through :class:`DialAgents`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Protocol

from callcontrol.calls.context import CallContext, Deadline, DialRequest
from callcontrol.config import Config
from callcontrol.errors import TelephonyError
from callcontrol.store.records import new_id
from callcontrol.telephony import (
    ChannelEntered,
    ChannelHungUp,
    ChannelLeftApp,
    DialEnded,
    DtmfReceived,
    leg_answered,
    leg_failed,
)

_BUSY_CAUSES = frozenset({17, 21})
_NO_ANSWER_CAUSES = frozenset({18, 19})


class DialRefused(Exception):
    """An ``agent:ID`` target cannot be dialed: ``status`` is the step's exit (``failed`` for an
    unknown agent, ``busy`` for one not free), ``reason`` goes on the timeline."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class DialAgents(Protocol):
    """What the dial step asks of the ACD about an agent it dials."""

    def dial_endpoint(self, agent_id: str) -> str:
        """The free agent's endpoint (``PJSIP/NAME``); raises :class:`DialRefused`."""

    def ringing(self, agent_id: str, call_id: str) -> None:
        """The agent is being rung for ``call_id``."""

    def connected(self, agent_id: str) -> None:
        """The agent answered and is bridged with the caller."""

    def released(self, agent_id: str) -> None:
        """The dial is over: the agent stops ringing, or its call ends (wrap-up)."""


def outbound_refusal(config: Config, request: DialRequest) -> str | None:
    """The toll-fraud guard of a ``dial`` to ``number:``: why it is refused, or ``None``. A
    flow's number must match ``security.outbound_allow.flows``; a blind transfer's number was
    checked against the token role's patterns by the API."""
    number = request.to.partition(":")[2]
    if request.transfer or config.security.outbound_allow.permits_dial(number):
        return None
    return f"{number} is not in security.outbound_allow.flows"


class DialStep:
    """The ``dial`` handler of call sessions."""

    def __init__(self, agents: DialAgents, config: Config) -> None:
        self.agents = agents
        self.config = config
        self.trunks = config.acd.trunks

    async def __call__(self, session: CallContext, request: DialRequest) -> str:
        """Ring the target, bridge it with the caller on answer and wait until one side hangs
        up. Returns ``next`` (the far end hung up first), ``busy``, ``no_answer`` or
        ``failed``."""
        kind, _, value = request.to.partition(":")
        agent_id: str | None = None
        if kind == "agent":
            try:
                endpoint = self.agents.dial_endpoint(value)
            except DialRefused as refused:
                session.log("dial_refused", to=request.to, reason=refused.reason)
                return refused.status
            agent_id = value
        elif kind == "endpoint" and value:
            endpoint = f"PJSIP/{value}"
        elif kind == "number" and value:
            guard = outbound_refusal(self.config, request)
            if guard:
                session.log("dial_refused", to=request.to, reason=guard)
                return "failed"
            trunk = request.via or next(iter(self.trunks), None)
            if trunk is None or trunk not in self.trunks:
                session.log("dial_refused", to=request.to,
                            reason=f"no trunk configured{f' named {trunk}' if trunk else ''}")
                return "failed"
            endpoint = self.trunks[trunk].format(number=value)
        else:
            session.log("dial_refused", to=request.to, reason="bad dial target")
            return "failed"
        return await _Dial(self.agents, session, request, endpoint, agent_id).run()


class _Dial:
    """One ``dial`` step, run in the caller's task: ring, bridge on answer, wait, clean up."""

    def __init__(self, agents: DialAgents, ctx: CallContext, request: DialRequest,
                 endpoint: str, agent_id: str | None) -> None:
        self.agents, self.ctx, self.request = agents, ctx, request
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
        if self.agent_id is not None:
            self.agents.ringing(self.agent_id, ctx.call_id)
        ctx.claim_channel(self.leg)
        ctx.log("dial_started", to=self.request.to, endpoint=self.endpoint, channel_id=self.leg)
        status = "failed"
        try:
            await ctx.recordings.leg(step=self.request.recording)
            self.leg_up = True
            await tel.create_channel(self.endpoint, self.leg, ["dial", ctx.call_id],
                                     caller_id=self.request.caller_id or ctx.caller.number
                                     or None)
            status = await self._ring(self.request.timeout)
            if status != "answered":
                return status
            await tel.create_bridge(self.bridge_id, ctx.recordings.bridge_kind)
            self.bridged = True
            await tel.add_to_bridge(self.bridge_id, ctx.channel_id, self.leg)
            if self.agent_id is not None:
                self.agents.connected(self.agent_id)
                ctx.update_call(agent_id=self.agent_id)
            self.talk_from = loop.time()
            ctx.log("dial_answered", to=self.request.to)
            await ctx.recordings.start()
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
        deadline = Deadline(seconds)
        while (event := await deadline.next(self.ctx.next_event)) is not None:
            if event.channel_id != self.leg:
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
            if isinstance(event, DtmfReceived) and event.channel_id == self.leg:
                await self.ctx.recordings.agent_digit(event.digit, f"dial:{self.request.to}")

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
            self.agents.released(self.agent_id)
