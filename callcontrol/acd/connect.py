"""A caller's time in a queue, run inside the caller's own call task.

    enter --(nobody logged in)--> no_agents          --(queue full)--> full
      |
    waiting (music on hold, position announced every interval)
      |-- max_wait --> timeout       |-- queue key D --> key:D     |-- staff gone --> no_agents
      |-- press 1, confirm 1 --> callback (the entry keeps its place; the flow ends)
      |-- AgentOffered --> agent leg created; dialed once it entered the app (ringing)
      |        |-- no answer / refused --> back to waiting (same place), next agent
      |        +-- answered --> bridged with the agent
      |                           |-- agent hangs up --> after (the flow goes on)
      |                           |-- transfer --> another queue / a dial
      +-- caller hangs up (any time) --> hangup (abandoned, or completed once bridged)

Every exit goes through one ``finally``: the agent leg is hung up, the bridge destroyed, music
stopped, and the agent handed back to the ACD, so no agent stays ``ringing`` and no bridge is
left behind.

A restarted daemon resumes a stay half-way (:mod:`callcontrol.acd.adopt`): back to ``waiting``
(:func:`resume_waiting`) or straight to the bridged state (:func:`resume_talking`). What it needs
of the flow's request is written on the ``queue_entered`` event (:func:`request_details`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from callcontrol.acd.events import (
    AgentOffered,
    HoldRequested,
    QueueChanged,
    TransferRequested,
    UnholdRequested,
)
from callcontrol.acd.queues import QueueEntry, QueueFull
from callcontrol.acd.router import Acd
from callcontrol.calls.context import (
    CallContext,
    CallerHungUp,
    Deadline,
    DialRequest,
    QueueRequest,
    QueueResult,
)
from callcontrol.calls.inbox import InboxEvent
from callcontrol.config import QueueConfig
from callcontrol.errors import TelephonyError
from callcontrol.store.records import new_id
from callcontrol.telephony import (
    ChannelEntered,
    DtmfReceived,
    PlaybackFinished,
    PlaybackStarted,
    leg_answered,
    leg_failed,
)


async def _together(*requests: Awaitable[None]) -> None:
    """Await independent PBX requests concurrently; once all are done, raise the first error
    (in argument order), as awaiting them one after the other would have."""
    results = await asyncio.gather(*requests, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def serve_in_queue(
    ctx: CallContext, request: QueueRequest, acd: Acd, *, entered_at: datetime | None = None
) -> QueueResult:
    """Keep the caller in ``request.name`` until it reaches an agent or leaves; see the module
    docstring for the exits. ``entered_at`` restores the place of an adopted caller."""
    if not acd.staffed(request.name):
        acd.refuse(request.name, ctx.call_id, "no_agents")
        return QueueResult("no_agents")
    await _recording_leg(ctx, request)
    number = "" if ctx.caller.withheld else ctx.caller.number
    try:
        entry = acd.enter(request.name, ctx.call_id, ctx.channel_id, number,
                          priority=request.priority, skills=request.skills,
                          entered_at=entered_at, details=request_details(request))
    except QueueFull:
        return QueueResult("full")
    ctx.update_call(queue=request.name)
    session = _QueueSession(ctx, request, acd, entry)
    return await session.run(session.wait)


async def _recording_leg(ctx: CallContext, request: QueueRequest) -> None:
    """The queue leg's recording policy, decided (and consent asked) before the wait."""
    await ctx.recordings.leg(queue=request.name, step=request.recording)


def request_details(request: QueueRequest) -> dict[str, Any]:
    """What ``queue_entered`` records of the request, beyond name and priority (the flow's
    variables are left out: they may hold personal data and the ACD does not need them)."""
    return {"skills": dict(request.skills), "max_wait": request.max_wait,
            "announce_position": request.announce_position, "moh": request.moh,
            "callback": request.callback, "keys": dict(request.keys),
            "recording": request.recording}


def request_from_details(data: Mapping[str, Any]) -> QueueRequest:
    """The request a ``queue_entered`` event's data describes (fields it lacks: defaults)."""
    return QueueRequest(
        name=str(data["queue"]), priority=int(data.get("priority") or 0),
        skills={str(k): int(v) for k, v in (data.get("skills") or {}).items()},
        max_wait=data.get("max_wait"), announce_position=data.get("announce_position"),
        moh=data.get("moh"), callback=bool(data.get("callback", False)),
        keys={str(k): str(v) for k, v in (data.get("keys") or {}).items()},
        recording=data.get("recording"),
    )


async def resume_waiting(ctx: CallContext, request: QueueRequest, acd: Acd, entry: QueueEntry,
                         ) -> QueueResult:
    """An adopted caller already back in line (``entry``, see :meth:`Acd.readmit`): music on
    hold again, then the stay goes on as if it never stopped (``max_wait`` counts from the
    entry's time). The queue leg's recording policy applies again (the recorder carries on
    from the call's timeline: :meth:`~callcontrol.calls.context.CallRecordings.restore`)."""
    session = _QueueSession(ctx, request, acd, entry)

    async def stage() -> QueueResult:
        await _recording_leg(ctx, request)
        return await session.wait()

    return await session.run(stage)


async def resume_talking(
    ctx: CallContext, request: QueueRequest, acd: Acd, entry: QueueEntry, *,
    agent_id: str, agent_leg: str | None, bridge_id: str, talk_s: float, on_hold: bool,
) -> QueueResult:
    """An adopted caller still bridged with ``agent_id`` (already ``on_call`` with it, see
    :meth:`Acd.adopt_connection`): wait for the end of the conversation as in a normal stay.
    ``agent_leg`` is ``None`` when the agent hung up while no daemon watched; ``talk_s``: the
    seconds talked before the adoption (so ``agent_disconnected`` counts the whole talk). The
    queue leg's recording policy applies again (an ``on_demand`` recording can be started);
    a recording the previous daemon made is not resumed (recovery finished its file)."""
    session = _QueueSession(ctx, request, acd, entry)
    session.agent_id, session.agent_leg, session.bridge_id = agent_id, agent_leg, bridge_id
    session.agent_leg_up = agent_leg is not None
    session.talking_since = session.loop.time() - talk_s

    async def stage() -> QueueResult:
        await _recording_leg(ctx, request)
        if agent_leg is None:
            session.end_by = "agent"
            return QueueResult("after", agent_id)
        if on_hold:
            session.hold_since = session.loop.time()
            await session.moh(True)
        return await session.talk()

    return await session.run(stage)


def estimated_wait_media(seconds: float | None) -> list[str]:
    """"The estimated hold time is currently N minutes" (under a minute: "less than 1
    minute"), from Asterisk's stock queue sounds; nothing while there is no estimate yet."""
    if seconds is None:
        return []
    minutes = round(seconds / 60)
    if minutes < 1:
        return ["sound:queue-holdtime", "sound:queue-less-than", "number:1",
                "sound:queue-minute"]
    unit = "sound:queue-minute" if minutes == 1 else "sound:queue-minutes"
    return ["sound:queue-holdtime", f"number:{minutes}", unit]


class _QueueSession:
    """The state of one caller's stay in one queue (owned by the caller's task)."""

    def __init__(self, ctx: CallContext, request: QueueRequest, acd: Acd,
                 entry: QueueEntry) -> None:
        self.ctx, self.request, self.acd, self.entry = ctx, request, acd, entry
        self.config: QueueConfig = acd.queue_config(request.name)
        self.tel = ctx.telephony
        self.loop = asyncio.get_running_loop()
        self.moh_on = False
        self.playback: str | None = None
        self.agent_id: str | None = None
        self.agent_leg: str | None = None
        self.agent_leg_up = False
        self.legs = 0
        self.ring_deadline: float | None = None
        self.bridge_id: str | None = None
        self.talking_since: float | None = None
        self.hold_since: float | None = None
        self.hold_s = 0.0
        self.leave_reason = "interrupted"
        self.leave_data: dict[str, Any] = {}
        self.end_by = "interrupted"
        self.entry_kept = False

    # -- the whole stay ---------------------------------------------------------------------

    async def run(self, stage: Callable[[], Awaitable[QueueResult]]) -> QueueResult:
        """Run the stay from ``stage`` (:meth:`wait`, or :meth:`talk` for an adopted call)."""
        try:
            return await stage()
        except CallerHungUp:
            if self.talking_since is not None:
                self.end_by = "caller"
                return QueueResult("hangup", self.agent_id, {"outcome": "completed"})
            self.leave_reason = "abandoned"
            return QueueResult("hangup", None, {"outcome": "abandoned"})
        finally:
            await self._release_media()
            self._settle()

    async def wait(self) -> QueueResult:
        """Waiting in line, until an agent answers or the caller leaves."""
        interval = self.request.announce_position or self.config.announce_position
        max_wait = self.request.max_wait or self.config.max_wait
        now = self.loop.time()
        deadline = (now + max_wait - self.entry.wait_seconds(self.ctx.now())
                    if max_wait else math.inf)
        next_announce = now + interval if interval else math.inf
        await self.moh(True)
        while True:
            if not self.acd.staffed(self.entry.queue):
                return await self._leave("no_agents", QueueResult("no_agents"))
            now = self.loop.time()
            if now >= deadline:
                return await self._leave("timed_out", QueueResult("timeout"))
            if self.ring_deadline is not None and now >= self.ring_deadline:
                await self._ring_over(no_answer=True)
                continue
            if now >= next_announce:
                next_announce = now + interval if interval else math.inf
                if self.agent_leg is None and self.playback is None:
                    await self._announce()
            wake = min(deadline, next_announce, self.ring_deadline or math.inf)
            event = await self.ctx.next_event(None if wake == math.inf else max(0.0, wake - now))
            if event is None:
                continue
            result = await self._on_waiting_event(event)
            if result is not None:
                return result

    async def _on_waiting_event(self, event: InboxEvent) -> QueueResult | None:
        if isinstance(event, AgentOffered):
            if event.entry_id == self.entry.entry_id and self.entry.offered_to == event.agent_id:
                await self._ring(event.agent_id)
        elif self.agent_leg is not None and event.channel_id == self.agent_leg:
            if isinstance(event, ChannelEntered):
                await self._dial_agent()
            elif leg_answered(event):
                return await self._connect()
            if leg_failed(event):
                self.agent_leg_up = False
                await self._ring_over(no_answer=True)
        elif isinstance(event, PlaybackFinished) and event.playback_id == self.playback:
            self.playback = None
            await self.moh(True)
        elif isinstance(event, DtmfReceived) and event.channel_id == self.ctx.channel_id:
            return await self._on_digit(event.digit)
        elif isinstance(event, QueueChanged):
            pass  # staffing is re-checked at the top of the loop
        return None

    async def _on_digit(self, digit: str) -> QueueResult | None:
        if digit in self.request.keys:
            return await self._leave("key", QueueResult(f"key:{digit}"), key=digit)
        if digit == "1" and self.request.callback and self.entry.number:
            return await self._offer_callback()
        return None

    async def _leave(self, reason: str, result: QueueResult, **data: Any) -> QueueResult:
        if self.agent_leg is not None:
            await self._ring_over(no_answer=False)
        self.leave_reason, self.leave_data = reason, data
        return result

    # -- announcements and callback ---------------------------------------------------------

    async def _announce(self) -> None:
        position = self.acd.position(self.entry)
        estimate = self.acd.estimated_wait(self.entry.queue)
        media = ["sound:queue-thereare", f"number:{position}", "sound:queue-callswaiting",
                 *estimated_wait_media(estimate)]
        if self.request.callback and self.entry.number:
            media += self.config.callback_prompt
        self.ctx.log("queue_announced", queue=self.entry.queue, position=position,
                     estimated_wait_s=estimate)
        await self._play(media)

    async def _offer_callback(self) -> QueueResult | None:
        """Read the number back and wait for ``1`` to confirm; anything else resumes waiting."""
        number = self.entry.number
        await self._play(["sound:you-entered", f"digits:{number}", "sound:if-correct-press",
                          "digits:1"])
        deadline = Deadline(self.config.callback_confirm_timeout)
        while (event := await deadline.next(self.ctx.next_event)) is not None:
            if isinstance(event, DtmfReceived) and event.channel_id == self.ctx.channel_id:
                if event.digit != "1":
                    break
                await self._stop_playback()
                self.acd.request_callback(self.entry, number)
                self.entry_kept = True
                return QueueResult("callback", None, {"number": number})
            if isinstance(event, PlaybackFinished) and event.playback_id == self.playback:
                self.playback = None
                continue
            if isinstance(event, PlaybackStarted | PlaybackFinished):
                continue
            self.ctx.push_back(event)  # an agent or a deadline matters more than the dialog
            break
        await self._stop_playback()
        await self.moh(True)
        return None

    # -- ringing an agent -------------------------------------------------------------------

    async def _ring(self, agent_id: str) -> None:
        agent = self.acd.board.get(agent_id)
        self.legs += 1
        self.agent_id = agent_id
        # unique per leg, not per queue session: after a transfer to another queue the old
        # agent leg's late hang-up events must not be taken for the new leg's
        self.agent_leg = f"{self.ctx.call_id}-agent-{self.legs}-{new_id()[:8]}"
        self.ring_deadline = self.loop.time() + self.config.ring_timeout
        self.ctx.claim_channel(self.agent_leg)
        try:
            self.agent_leg_up = True
            await self.tel.create_channel(
                f"PJSIP/{agent.config.endpoint}", self.agent_leg,
                ["agent", self.ctx.call_id, agent_id],
                caller_id=self.ctx.caller.number or None,
            )
        except TelephonyError as exc:
            self.ctx.log("agent_ring_failed", agent_id=agent_id, error=str(exc))
            await self._ring_over(no_answer=True)

    async def _dial_agent(self) -> None:
        """The agent leg entered the application (ARI accepts a dial only from then on)."""
        assert self.agent_leg is not None
        try:
            await self.tel.dial(self.agent_leg, timeout_s=math.ceil(self.config.ring_timeout))
        except TelephonyError as exc:
            self.ctx.log("agent_ring_failed", agent_id=self.agent_id, error=str(exc))
            await self._ring_over(no_answer=True)

    async def _ring_over(self, *, no_answer: bool) -> None:
        """Stop ringing the agent: a no-answer (counted) or a cancel (the caller's side)."""
        agent_id = self.agent_id
        await self._drop_agent_leg()
        self.ring_deadline = None
        if agent_id is not None:
            if no_answer:
                self.acd.ring_failed(self.entry, agent_id)
            else:
                self.acd.ring_cancelled(self.entry, agent_id)

    async def _drop_agent_leg(self) -> None:
        if self.agent_leg is None:
            return
        if self.agent_leg_up:
            with contextlib.suppress(TelephonyError):
                await self.tel.hangup(self.agent_leg)
            self.agent_leg_up = False
        self.ctx.release_channel(self.agent_leg)
        self.agent_leg = None

    # -- talking ----------------------------------------------------------------------------

    async def _connect(self) -> QueueResult | None:
        """Bridge caller and agent; on a PBX error free the agent and keep waiting."""
        assert self.agent_id is not None and self.agent_leg is not None
        self.ring_deadline = None
        self.bridge_id = f"{self.ctx.call_id}-queue"
        try:  # independent requests go together: the caller waits for two round trips
            await _together(self._stop_playback(), self.moh(False),
                            self.tel.create_bridge(self.bridge_id,
                                                   self.ctx.recordings.bridge_kind))
            await self.tel.add_to_bridge(self.bridge_id, self.ctx.channel_id, self.agent_leg)
        except TelephonyError as exc:
            self.ctx.log("agent_bridge_failed", agent_id=self.agent_id, error=str(exc))
            await self._destroy_bridge()
            await self._ring_over(no_answer=False)
            await self.moh(True)
            return None
        self.acd.answered(self.entry, self.agent_id, self.ctx.channel_id)
        self.ctx.update_call(agent_id=self.agent_id)
        self.talking_since = self.loop.time()
        await self.ctx.recordings.start()
        return await self.talk()

    async def talk(self) -> QueueResult:
        """Bridged with the agent, until one side hangs up or the agent transfers."""
        while True:
            event = await self.ctx.next_event(None)
            if event is None:
                continue
            if event.channel_id == self.agent_leg and leg_failed(event):
                self.agent_leg_up = False
                self.end_by = "agent"
                return QueueResult("after", self.agent_id)
            if isinstance(event, HoldRequested) and self.hold_since is None:
                await self._hold(True)
            elif isinstance(event, UnholdRequested) and self.hold_since is not None:
                await self._hold(False)
            elif isinstance(event, TransferRequested):
                return await self._transfer(event.target)
            elif isinstance(event, DtmfReceived) and event.channel_id == self.agent_leg:
                await self.ctx.recordings.agent_digit(event.digit, f"agent:{self.agent_id}")

    async def _hold(self, on: bool) -> None:
        assert self.bridge_id is not None
        if on:
            await self.tel.remove_from_bridge(self.bridge_id, self.ctx.channel_id)
            await self.moh(True)
            self.hold_since = self.loop.time()
        else:
            await self.moh(False)
            await self.tel.add_to_bridge(self.bridge_id, self.ctx.channel_id)
            self.hold_s += self.loop.time() - (self.hold_since or self.loop.time())
            self.hold_since = None
        self.ctx.log("hold" if on else "unhold", agent_id=self.agent_id)

    async def _transfer(self, target: str) -> QueueResult:
        agent_id = self.agent_id
        self.ctx.log("transferred", agent_id=agent_id, target=target)
        self.end_by = "transfer"
        await self._release_media()
        self._settle()
        kind, _, value = target.partition(":")
        if kind == "queue":
            result = await serve_in_queue(self.ctx, replace(self.request, name=value), self.acd)
            return replace(result, data={**result.data, "transferred_from": agent_id})
        dialed = await self.ctx.dial(DialRequest(to=target, transfer=True))
        return QueueResult("after", agent_id, {"transferred_to": target, "dial": dialed})

    # -- media and the one clean-up ---------------------------------------------------------

    async def _play(self, media: list[str]) -> None:
        await self.moh(False)
        self.playback = self.ctx.next_playback_id("queue")
        await self.tel.play(self.ctx.channel_id, media, self.playback, self.ctx.language)

    async def _stop_playback(self) -> None:
        if self.playback is not None:
            playback, self.playback = self.playback, None
            with contextlib.suppress(TelephonyError):
                await self.tel.stop_playback(playback)

    async def moh(self, on: bool) -> None:
        """Start or stop music on hold on the caller (each at most once)."""
        if on and not self.moh_on:
            await self.tel.start_moh(self.ctx.channel_id, self.request.moh or self.config.moh)
        elif not on and self.moh_on:
            with contextlib.suppress(TelephonyError):
                await self.tel.stop_moh(self.ctx.channel_id)
        self.moh_on = on

    async def _destroy_bridge(self) -> None:
        if self.bridge_id is not None:
            bridge, self.bridge_id = self.bridge_id, None
            with contextlib.suppress(TelephonyError):
                await self.tel.destroy_bridge(bridge)

    async def _release_media(self) -> None:
        """Hang up the agent leg, destroy the bridge, stop sounds (each at most once)."""
        await self._drop_agent_leg()
        await self._destroy_bridge()
        await self._stop_playback()
        await self.moh(False)

    def _settle(self) -> None:
        """Hand the agent and the entry back to the ACD, whatever the exit was."""
        if self.talking_since is not None:
            if self.hold_since is not None:
                self.hold_s += self.loop.time() - self.hold_since
                self.hold_since = None
            assert self.agent_id is not None
            talk_s = self.loop.time() - self.talking_since - self.hold_s  # hold apart
            self.acd.call_ended(self.ctx.call_id, self.entry.queue, self.agent_id,
                                by=self.end_by, talk_s=talk_s, hold_s=self.hold_s)
            self.talking_since = None
        elif not self.entry_kept:
            self.acd.leave(self.entry, self.leave_reason, **self.leave_data)
