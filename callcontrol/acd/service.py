"""The ACD on the daemon: wires :class:`~callcontrol.acd.router.Acd` (queues and routing) to
the PBX, the call router and the rest of the daemon; each job lives in its own module:

    caller task (flow ``queue`` step)  --> connect.serve_in_queue (wired by the app)
    agents, headsets, agent actions    --> roster.AgentRoster (also the dial step's DialAgents)
    ACD callbacks                      --> callback.CallbackRunner, on service calls
                                           (sessions) the call manager starts
    ChannelEntered("feature", ...)     --> feature_codes.FeatureCodes.run, on a service
                                           call the call manager starts
    today's queue figures              --> stats.TodayLog (shaped by api.facade)
    daemon restart                     --> restore_agents, restore_callbacks (start),
                                           adoption (recovery): adopt, callback_store

The router task and the callback-release task are owned by :class:`AcdService` and cancelled
by :meth:`AcdService.close`; call sessions are the call manager's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.adopt import Adoption, plan_adoption, restore_agents
from callcontrol.acd.agents import AgentBoard
from callcontrol.acd.callback import callback_bridge_id
from callcontrol.acd.callback_store import RestoredCallbacks, restore_callbacks
from callcontrol.acd.feature_codes import FeatureCodes
from callcontrol.acd.roster import AgentRoster
from callcontrol.acd.router import Acd
from callcontrol.acd.stats import TodayLog
from callcontrol.calls.context import TimelineEntry
from callcontrol.calls.inbox import AcdMessage
from callcontrol.calls.router import EventRouter
from callcontrol.calls.session import ServiceCalls
from callcontrol.clock import utcnow
from callcontrol.config import Config
from callcontrol.errors import TelephonyError
from callcontrol.logging import get_logger
from callcontrol.store.records import InteractionLog
from callcontrol.telephony import ChannelInfo, HeadsetStatus, Telephony

_log = get_logger(__name__)


class AcdService:
    """The ACD as the daemon runs it (see the module docstring): agents and queues from
    ``config``, its messages posted through ``router``, callbacks run on ``services`` (the call
    manager's service calls), headset reachability read from ``contacts`` (the AMI adapter)."""

    def __init__(
        self,
        config: Config,
        telephony: Telephony,
        log: InteractionLog,
        router: EventRouter,
        services: ServiceCalls,
        *,
        contacts: HeadsetStatus | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.telephony = telephony
        self.router = router
        self.today = TodayLog(log, ZoneInfo(config.site.timezone))
        self.core = Acd(
            config.agents, config.queues, log=self.today, post=self._post, services=services,
            settings=config.acd, clock=clock, seed=config.acd.random_seed,
        )
        self.roster = AgentRoster(self.core, contacts)
        self.feature_codes = FeatureCodes(self.core)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the router task."""
        await self.core.start()

    async def close(self) -> None:
        """Stop the router, callbacks and wrap-up timers."""
        await self.core.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def board(self) -> AgentBoard:
        """The agents and their states."""
        return self.core.board

    def _own(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _post(self, event: AcdMessage) -> None:
        """Wake the call task owning ``event.channel_id`` (a call already gone drops it)."""
        if not self.router.post(event):
            _log.debug("acd_event_unrouted", channel_id=event.channel_id,
                       event=type(event).__name__)

    # -- after a daemon restart (callcontrol.acd.adopt) -------------------------------------

    async def restore_agents(self, engine: AsyncEngine) -> dict[str, str]:
        """At start: every agent back in its last journaled state."""
        return await restore_agents(engine, self.core)

    async def restore_callbacks(
        self, engine: AsyncEngine, *, ready: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """At start, after the agents: the callbacks a previous daemon left pending back in
        line at their places (callcontrol.acd.callback_store); returns how many. They are
        offered agents only once ``ready()`` returned (the PBX link is up) and the bridges of
        attempts the restart cut are gone."""
        self.core.hold_callbacks()
        try:
            restored = await restore_callbacks(engine, self.core)
        except BaseException:
            self.core.release_callbacks()
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
        self.core.release_callbacks()

    def adoption(
        self, *, call_id: str, caller_channel: str, caller_number: str,
        timeline: Sequence[TimelineEntry], channels: Mapping[str, ChannelInfo],
    ) -> Adoption | None:
        """Take back a queue caller a previous daemon left (waiting or bridged), or ``None``
        when the call was not in a queue."""
        return plan_adoption(self.core, call_id=call_id, caller_channel=caller_channel,
                             caller_number=caller_number, timeline=timeline, channels=channels)

    def release_unadopted(self, live_call_ids: Collection[str]) -> list[str]:
        """Free agents restored ``on_call`` with a call that was not adopted."""
        return self.core.release_unadopted(live_call_ids)

