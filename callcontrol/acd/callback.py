"""Callback tasks: call the agent first, then the customer, and bridge them.

The router starts one task per callback entry it offers an agent to; the runner owns those tasks
(cancelled on shutdown or when the entry is merged away) and the inboxes of their channels: the
app hands it every event of a channel it created (:meth:`CallbackRunner.deliver`). A customer leg
that fails is retried after ``callback_retry_delay`` up to ``callback_attempts`` times, the entry
keeping its place; an agent that does not answer counts as a no-answer and the entry is offered
to the next agent. Every exit path hangs up what it created and returns the agent to a rest
state.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import TYPE_CHECKING

from callcontrol.acd.agents import AgentState
from callcontrol.acd.events import leg_answered, leg_failed
from callcontrol.acd.queues import QueueEntry
from callcontrol.errors import TelephonyError
from callcontrol.events_router import receive
from callcontrol.telephony import ChannelEntered, ChannelHungUp, ChannelLeftApp, TelephonyEvent

if TYPE_CHECKING:
    from callcontrol.acd.router import Acd


def callback_bridge_id(call_id: str) -> str:
    """The bridge of a callback's agent and customer (named after the call that asked)."""
    return f"{call_id}-callback"


class CallbackRunner:
    """The ACD's callback tasks and the inboxes of their channels."""

    def __init__(self, acd: Acd) -> None:
        self._acd = acd
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._inboxes: dict[str, asyncio.Queue[TelephonyEvent]] = {}

    def start(self, entry: QueueEntry, agent_id: str) -> None:
        """Start connecting ``agent_id`` with the customer of a callback entry."""
        task = asyncio.create_task(self._run(entry, agent_id), name=f"callback-{entry.entry_id}")
        self._tasks[entry.entry_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(entry.entry_id, None))

    def cancel(self, entry: QueueEntry) -> None:
        """Stop the task working on ``entry`` (merged away or withdrawn), if any."""
        task = self._tasks.get(entry.entry_id)
        if task is not None:
            task.cancel()

    def owns(self, channel_id: str) -> bool:
        """True when ``channel_id`` is a leg of a running callback."""
        return channel_id in self._inboxes

    def deliver(self, event: TelephonyEvent) -> bool:
        """Hand an event to the callback owning its channel; False when none owns it."""
        inbox = self._inboxes.get(event.channel_id)
        if inbox is None:
            return False
        inbox.put_nowait(event)
        return True

    async def wait_idle(self) -> None:
        """Wait until no callback task runs (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel every callback task and wait for their clean-up."""
        for task in list(self._tasks.values()):
            task.cancel()
        await self.wait_idle()

    async def _run(self, entry: QueueEntry, agent_id: str) -> None:
        acd, tel, settings = self._acd, self._acd.telephony, self._acd.settings
        agent = acd.board.get(agent_id)
        config = acd.queue_config(entry.queue)
        attempt = entry.callback_attempts + 1
        base = f"{entry.call_id}-cb{attempt}-{agent_id}"
        agent_leg, customer_leg = f"{base}-agent", f"{base}-customer"
        bridge_id = callback_bridge_id(entry.call_id)
        inbox: asyncio.Queue[TelephonyEvent] = asyncio.Queue()
        self._inboxes[agent_leg] = self._inboxes[customer_leg] = inbox
        created: list[str] = []
        bridged_at: float | None = None
        loop = asyncio.get_running_loop()
        acd.log_call(entry.call_id, "callback_attempt", queue=entry.queue, agent_id=agent_id,
                     entry_id=entry.entry_id, attempt=attempt, number=entry.callback_number)
        try:
            created.append(agent_leg)
            await tel.create_channel(f"PJSIP/{agent.config.endpoint}", agent_leg,
                                     ["callback-agent", entry.call_id, agent_id])
            entered = await _wait_entered(inbox, agent_leg, config.ring_timeout, None)
            if entered == "entered":
                await tel.dial(agent_leg, timeout_s=math.ceil(config.ring_timeout))
            if entered != "entered" or await _wait_answer(
                inbox, agent_leg, config.ring_timeout, None
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
            result = await _wait_entered(inbox, customer_leg, settings.callback_ring_timeout,
                                         agent_leg)
            if result == "entered":
                await tel.dial(customer_leg,
                               timeout_s=math.ceil(settings.callback_ring_timeout),
                               caller_id=settings.callback_caller_id)
                result = await _wait_answer(inbox, customer_leg,
                                            settings.callback_ring_timeout, agent_leg)
            if result != "answered":
                acd.callback_failed(entry, f"customer_{result}")
                return
            with contextlib.suppress(TelephonyError):
                await tel.stop_moh(agent_leg)
            await tel.create_bridge(bridge_id)
            bridged_at = loop.time()
            await tel.add_to_bridge(bridge_id, agent_leg)
            await tel.add_to_bridge(bridge_id, customer_leg)
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
            for channel in (agent_leg, customer_leg):
                self._inboxes.pop(channel, None)
            await _clean_up(acd, created, bridge_id if bridged_at is not None else None)
            _settle_agent(acd, entry, agent_id, bridged_at, loop.time())


async def _wait_entered(
    inbox: asyncio.Queue[TelephonyEvent], leg: str, seconds: float, watch: str | None
) -> str:
    """``entered`` once ``leg`` is in the application (ARI dials it only from then on),
    ``failed``, ``timeout``, or ``agent_gone`` when ``watch`` hangs up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        if (event := await receive(inbox, remaining)) is None:
            break
        if event.channel_id == leg:
            if isinstance(event, ChannelEntered):
                return "entered"
            if leg_failed(event):
                return "failed"
        elif event.channel_id == watch and isinstance(event, ChannelHungUp | ChannelLeftApp):
            return "agent_gone"
    return "timeout"


async def _wait_answer(
    inbox: asyncio.Queue[TelephonyEvent], leg: str, ring_s: float, watch: str | None
) -> str:
    """``answered``, ``failed``, ``timeout``, or ``agent_gone`` when ``watch`` hangs up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ring_s
    while (remaining := deadline - loop.time()) > 0:
        if (event := await receive(inbox, remaining)) is None:
            break
        if event.channel_id == leg:
            if leg_answered(event):
                return "answered"
            if leg_failed(event):
                return "failed"
        elif event.channel_id == watch and isinstance(event, ChannelHungUp | ChannelLeftApp):
            return "agent_gone"
    return "timeout"


async def _wait_hangup(inbox: asyncio.Queue[TelephonyEvent], legs: set[str]) -> str:
    """The first of ``legs`` to hang up."""
    while True:
        event = await inbox.get()
        if event.channel_id in legs and isinstance(event, ChannelHungUp | ChannelLeftApp):
            return event.channel_id


async def _clean_up(acd: Acd, channels: list[str], bridge_id: str | None) -> None:
    """Hang up the legs still up and destroy the bridge; gone objects are not errors."""
    for channel in channels:
        with contextlib.suppress(TelephonyError):
            await acd.telephony.hangup(channel)
    if bridge_id is not None:
        with contextlib.suppress(TelephonyError):
            await acd.telephony.destroy_bridge(bridge_id)


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
