"""Callback tasks: call the agent first, then the customer, and bridge them.

The router starts one task per callback entry it offers an agent to; each runs on a service call
(a call session with no row, started by the call manager) that owns both legs in the call router
before either exists. The runner keeps those tasks (cancelled on shutdown or when the entry is
merged away). A customer leg that fails is retried after ``callback_retry_delay`` up to
``callback_attempts`` times, the entry keeping its place; an agent that does not answer counts as
a no-answer and the entry is offered to the next agent. Every exit path hangs up what it created
and returns the agent to a rest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from callcontrol.acd.agents import AgentState
from callcontrol.acd.queues import QueueEntry
from callcontrol.calls.context import Deadline
from callcontrol.calls.inbox import Inbox, inbox_reader
from callcontrol.calls.session import CallSession, ServiceCalls
from callcontrol.errors import TelephonyError
from callcontrol.telephony import (
    ChannelEntered,
    ChannelHungUp,
    ChannelLeftApp,
    Telephony,
    leg_answered,
    leg_failed,
)

if TYPE_CHECKING:
    from callcontrol.acd.router import Acd


def callback_bridge_id(call_id: str) -> str:
    """The bridge of a callback's agent and customer (named after the call that asked)."""
    return f"{call_id}-callback"


class CallbackRunner:
    """The ACD's callback tasks, each on a service call of ``services``."""

    def __init__(self, acd: Acd, services: ServiceCalls) -> None:
        self._acd = acd
        self._services = services
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, entry: QueueEntry, agent_id: str) -> None:
        """Start connecting ``agent_id`` with the customer of a callback entry."""
        base = f"{entry.call_id}-cb{entry.callback_attempts + 1}-{agent_id}"
        customer_leg = f"{base}-customer"
        task = self._services(
            f"callback-{base}", [f"{base}-agent", customer_leg],
            lambda session: self._run(session, entry, agent_id, customer_leg),
        )
        self._tasks[entry.entry_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(entry.entry_id, None))

    def cancel(self, entry: QueueEntry) -> None:
        """Stop the task working on ``entry`` (merged away or withdrawn), if any."""
        task = self._tasks.get(entry.entry_id)
        if task is not None:
            task.cancel()

    async def wait_idle(self) -> None:
        """Wait until no callback task runs (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel every callback task and wait for their clean-up."""
        for task in list(self._tasks.values()):
            task.cancel()
        await self.wait_idle()

    async def _run(
        self, session: CallSession, entry: QueueEntry, agent_id: str, customer_leg: str,
    ) -> None:
        """One attempt: the session owns the agent leg (its channel) and ``customer_leg``."""
        acd, tel, settings = self._acd, session.telephony, self._acd.settings
        agent = acd.board.get(agent_id)
        config = acd.queue_config(entry.queue)
        attempt = entry.callback_attempts + 1
        agent_leg = session.channel_id
        bridge_id = callback_bridge_id(entry.call_id)
        inbox = session.inbox
        created: list[str] = []
        bridged_at: float | None = None
        loop = asyncio.get_running_loop()
        acd.log_call(entry.call_id, "callback_attempt", queue=entry.queue, agent_id=agent_id,
                     entry_id=entry.entry_id, attempt=attempt, number=entry.callback_number)
        try:
            created.append(agent_leg)
            await tel.create_channel(f"PJSIP/{agent.config.endpoint}", agent_leg,
                                     ["callback-agent", entry.call_id, agent_id])
            entered = await _wait_leg(inbox, agent_leg, config.ring_timeout, None, _ENTERED)
            if entered == "entered":
                await tel.dial(agent_leg, timeout_s=math.ceil(config.ring_timeout))
            if entered != "entered" or await _wait_leg(
                inbox, agent_leg, config.ring_timeout, None, _ANSWERED
            ) != "answered":
                acd.ring_failed(entry, agent_id)
                return
            entry.offered_to = None
            acd.board.connected(agent_id)
            # Hold music while the customer is rung: a ringing tone would stay on the agent's
            # leg and keep the customer's voice out of it once bridged.
            await tel.start_moh(agent_leg, config.moh)
            created.append(customer_leg)
            await tel.create_channel(
                settings.callback_endpoint.format(number=entry.callback_number), customer_leg,
                ["callback-customer", entry.call_id, entry.entry_id],
                caller_id=settings.callback_caller_id,
            )
            result = await _wait_leg(inbox, customer_leg, settings.callback_ring_timeout,
                                     agent_leg, _ENTERED)
            if result == "entered":
                await tel.dial(customer_leg,
                               timeout_s=math.ceil(settings.callback_ring_timeout),
                               caller_id=settings.callback_caller_id)
                result = await _wait_leg(inbox, customer_leg,
                                         settings.callback_ring_timeout, agent_leg, _ANSWERED)
            if result != "answered":
                acd.callback_failed(entry, f"customer_{result}")
                return
            with contextlib.suppress(TelephonyError):
                await tel.stop_moh(agent_leg)
            await tel.create_bridge(bridge_id)
            bridged_at = loop.time()
            await tel.add_to_bridge(bridge_id, agent_leg, customer_leg)
            acd.callback_connected(entry, agent_id)
            gone = await _wait_hangup(inbox, {agent_leg, customer_leg})
            created.remove(gone)
            acd.call_ended(entry.call_id, entry.queue, agent_id,
                           by="agent" if gone == agent_leg else "caller",
                           talk_s=loop.time() - bridged_at)
        except TelephonyError as exc:
            acd.log_call(entry.call_id, "callback_error", queue=entry.queue, agent_id=agent_id,
                         error=str(exc))
            if entry in acd.lines[entry.queue]:
                acd.callback_failed(entry, "error")
        finally:
            await _clean_up(tel, created, bridge_id if bridged_at is not None else None)
            _settle_agent(acd, entry, agent_id, bridged_at, loop.time())


_ENTERED = ("entered", lambda event: isinstance(event, ChannelEntered))
"""The leg is in the application (ARI dials it only from then on)."""
_ANSWERED = ("answered", leg_answered)
"""The leg answered."""


async def _wait_leg(inbox: Inbox, leg: str, seconds: float, watch: str | None,
                    reached: tuple[str, Callable[[object], bool]]) -> str:
    """``reached[0]`` once ``reached[1]`` holds for an event of ``leg``, ``failed``,
    ``timeout``, or ``agent_gone`` when ``watch`` hangs up."""
    name, holds = reached
    deadline, read = Deadline(seconds), inbox_reader(inbox)
    while (event := await deadline.next(read)) is not None:
        if event.channel_id == leg:
            if holds(event):
                return name
            if leg_failed(event):
                return "failed"
        elif event.channel_id == watch and isinstance(event, ChannelHungUp | ChannelLeftApp):
            return "agent_gone"
    return "timeout"


async def _wait_hangup(inbox: Inbox, legs: set[str]) -> str:
    """The first of ``legs`` to hang up."""
    while True:
        event = await inbox.get()
        if event.channel_id in legs and isinstance(event, ChannelHungUp | ChannelLeftApp):
            return event.channel_id


async def _clean_up(tel: Telephony, channels: list[str], bridge_id: str | None) -> None:
    """Hang up the legs still up and destroy the bridge; gone objects are not errors."""
    for channel in channels:
        with contextlib.suppress(TelephonyError):
            await tel.hangup(channel)
    if bridge_id is not None:
        with contextlib.suppress(TelephonyError):
            await tel.destroy_bridge(bridge_id)


def _settle_agent(
    acd: Acd, entry: QueueEntry, agent_id: str, bridged_at: float | None, now: float
) -> None:
    """Whatever happened, leave the agent neither ringing nor on a call that is over."""
    if entry.offered_to == agent_id:
        entry.offered_to = None
    agent = acd.board.agents[agent_id]
    if agent.state is AgentState.RINGING:
        acd.board.ring_cancelled(agent_id)
    elif agent.state is AgentState.ON_CALL:
        if bridged_at is None:
            acd.board.call_ended(agent_id, 0.0)
        else:
            acd.call_ended(entry.call_id, entry.queue, agent_id, by="cancelled",
                           talk_s=now - bridged_at)
    acd.wake()

