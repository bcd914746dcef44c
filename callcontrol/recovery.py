"""Reconciliation after every ARI (re)connect and at start (DECISIONS.md, "Restart and adopt").

    for each call the daemon tracks whose channel is gone:
        Asterisk restarted since the last resync (or unknown)  -> end it as ``lost``
        Asterisk did not restart (the link was cut, the caller -> end it as if its hangup had
        hung up meanwhile)                                        been heard now: its own
                                                                  outcome (``completed`` when
                                                                  talking, ``abandoned`` when
                                                                  waiting...), timeline
                                                                  ``hangup_unseen``
    for each open call row no running task owns:
        its channel still in our app (the daemon died)         -> stop its playbacks, then:
            bridged with an agent by its queue                 -> adopt: a new task, the bridge
                                                                  kept, the agent ``on_call``
            waiting in a queue                                 -> adopt: a new task, back in
                                                                  line at its original place
                (both: callcontrol.acd.adopt; log ``recovered``; the task closes the row)
            in an IVR step (in no bridge)                      -> hand it to the dialplan
                                                                  fallback, close
                                                                  ``interrupted``
            anything else (a bridge it cannot adopt)           -> hang up, close
                                                                  ``interrupted``
        its channel gone, Asterisk started after the call      -> close as ``lost``
        its channel gone otherwise                             -> close as ``interrupted``
    agents restored on a call that was not adopted             -> back to their rest state
    a caller in our app that no row knows (its StasisStart      -> take it as a new call
    was never read: the daemon died)
    any other channel of our app that nobody owns              -> hang up

No call row is left open: every call that reached the daemon ends with a final row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.adopt import Adoption
from callcontrol.calls.context import TimelineEntry
from callcontrol.calls.manager import CallManager
from callcontrol.calls.router import EventRouter
from callcontrol.clock import utcnow
from callcontrol.errors import CallControlError, TelephonyError
from callcontrol.logging import get_logger
from callcontrol.store.queries import call_timeline, find_by_sip_call_id, open_calls
from callcontrol.store.records import CallClosed, CallEvent, InteractionLog, Outcome
from callcontrol.store.tables import CallRow
from callcontrol.telephony import ChannelEntered, ChannelInfo, Telephony

log = get_logger("callcontrol.recovery")


class AdoptingAcd(Protocol):
    """What recovery asks of the ACD."""

    def adoption(
        self, *, call_id: str, caller_channel: str, caller_number: str,
        timeline: Sequence[TimelineEntry], channels: Mapping[str, ChannelInfo],
    ) -> Adoption | None:
        """Take back a queue caller, or ``None`` when the call was not in a queue."""

    def release_unadopted(self, live_call_ids: Collection[str]) -> list[str]:
        """Free agents restored on a call that was not adopted."""


class LedgerHook(Protocol):
    """The fallback-ledger follower, resynchronised after every reconciliation."""

    async def resync(self, pbx_started: datetime | None) -> None:
        """Import the calls the dialplan fallback took while the daemon was away."""


class Recovery:
    """Runs the reconciliation; ``busy`` while it runs (stray channels are not hung up then)."""

    def __init__(
        self, *, telephony: Telephony, calls: CallManager, router: EventRouter,
        engine: AsyncEngine, log: InteractionLog, acd: AdoptingAcd, ledger: LedgerHook,
    ) -> None:
        self.telephony = telephony
        self.calls = calls
        self.router = router
        self.engine = engine
        self.interaction_log = log
        self.acd = acd
        self.ledger = ledger
        self.busy = False
        self.runs = 0
        self._pbx_started: datetime | None = None  # Asterisk's start time at the last resync

    async def resync(self) -> None:
        """Reconcile calls, rows and channels with what Asterisk has now."""
        self.busy = True
        self.runs += 1
        try:
            await self._resync()
        except CallControlError as exc:
            log.warning("resync_failed", error=str(exc))
        finally:
            self.busy = False

    async def _resync(self) -> None:
        channels = {c.channel_id: c for c in await self.telephony.list_channels()}
        startup = await self.telephony.pbx_started()
        restarted = startup is None or startup != self._pbx_started
        self._pbx_started = startup
        for session in list(self.calls.sessions.values()):
            if session.channel_id in channels:
                continue
            if restarted:
                self.calls.abort(session, "lost", "channel gone after the PBX link came back")
            else:
                self.calls.hangup_unseen(session)
        owned_calls = {s.call_id for s in self.calls.sessions.values()}
        handled: set[str] = set()
        for row in await open_calls(self.engine):
            if row.call_id in owned_calls:
                continue
            outcome: Outcome
            if row.channel_id in channels and not self.router.owns(row.channel_id):
                handled.add(row.channel_id)
                closing = await self._take_back(row, channels)
                if closing is None:
                    continue  # adopted: its new task closes the row
                outcome, reason = closing
            elif startup is not None and row.started_at < startup:
                outcome, reason = "lost", "cut by an Asterisk restart"
            else:
                outcome, reason = "interrupted", "daemon died while it owned the call"
            self.interaction_log.append(CallEvent(call_id=row.call_id, kind="recovered",
                                                  data={"outcome": outcome, "reason": reason}))
            self.interaction_log.append(CallClosed(call_id=row.call_id, outcome=outcome,
                                                   reason=reason))
            log.info("call_recovered", call_id=row.call_id, outcome=outcome)
        for agent_id in self.acd.release_unadopted(set(self.calls.sessions)):
            log.info("agent_call_not_adopted", agent_id=agent_id)
        for channel_id, channel in channels.items():
            if channel_id in handled or self.router.owns(channel_id):
                continue
            if await self._take_unseen_caller(channel):
                continue
            log.info("stray_channel_hangup", channel_id=channel_id)
            with contextlib.suppress(TelephonyError):
                await self.telephony.hangup(channel_id)
        await self.ledger.resync(startup)  # calls the fallback took while we were down

    async def _take_unseen_caller(self, channel: ChannelInfo) -> bool:
        """A caller in our app that no call row knows (the daemon died before it read the
        StasisStart, or that event is still on its way): take it as a new call, which writes
        its row. ``False`` when ``channel`` is not such a caller."""
        args = channel.app_args
        if len(args) < 2 or args[0] != "inbound" or not args[1]:
            return False
        if await find_by_sip_call_id(self.engine, args[1]):
            return False
        if self.router.owns(channel.channel_id):  # its StasisStart came in meanwhile
            return True
        log.info("unseen_caller_taken", channel_id=channel.channel_id, sip_call_id=args[1])
        self.calls.start_inbound(ChannelEntered(
            channel_id=channel.channel_id, at=channel.created_at or utcnow(), args=args,
            caller_number=channel.caller_number, caller_name=channel.caller_name,
            extension=channel.extension, state=channel.state, sip_call_id=args[1],
        ))
        return True

    async def _take_back(self, row: CallRow, channels: Mapping[str, ChannelInfo]
                         ) -> tuple[Outcome, str] | None:
        """A call whose channel is still in our app: adopt it (``None``) or hand it back /
        hang it up (returns the outcome and reason to close its row with)."""
        timeline = await call_timeline(self.engine, row.call_id)
        playbacks = [str(e.data["playback_id"]) for e in timeline
                     if e.kind == "playback_started" and e.data.get("playback_id")]
        for playback_id in reversed(playbacks):
            with contextlib.suppress(TelephonyError):
                await self.telephony.stop_playback(playback_id)
        # No await from here until the new task owns the call's channels (acd.adopt).
        adoption = self.acd.adoption(call_id=row.call_id, caller_channel=row.channel_id,
                                    caller_number=row.caller_number, timeline=timeline,
                                    channels=channels)
        if adoption is not None:
            session = self.calls.adopt(row.call_id, row.channel_id,
                                      caller_number=row.caller_number,
                                      caller_name=row.caller_name, extension=row.extension,
                                      runner=adoption.runner, playbacks=len(playbacks),
                                      claims=adoption.claims)
            session.recordings.restore(timeline, flow=row.flow)
            session.log("recovered", adopted=adoption.kind, **adoption.details)
            log.info("call_adopted", call_id=row.call_id, state=adoption.kind)
            return None
        if channels[row.channel_id].bridge_ids:
            with contextlib.suppress(TelephonyError):
                await self.telephony.hangup(row.channel_id)
            return "interrupted", "daemon restarted: caller in a bridge it cannot adopt"
        await self._hand_back(row.channel_id)
        return "interrupted", "daemon restarted: caller handed to fallback"

    async def _hand_back(self, channel_id: str) -> None:
        try:
            await self.telephony.continue_in_dialplan(channel_id)
        except TelephonyError as exc:
            log.warning("hand_back_failed", channel_id=channel_id, error=str(exc))
