"""Reconciliation after every ARI (re)connect and at start (DECISIONS.md, "Restart and adopt").

    for each call the daemon tracks whose channel is gone      -> end it as ``lost``
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
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from callcontrol.ari import protocol
from callcontrol.ari.protocol import parse_time
from callcontrol.clock import utcnow
from callcontrol.errors import CallControlError, TelephonyError
from callcontrol.logging import get_logger
from callcontrol.store.records import CallClosed, CallEvent, Outcome
from callcontrol.telephony import ChannelEntered, ChannelInfo

if TYPE_CHECKING:
    from callcontrol.app import App
    from callcontrol.store.tables import CallRow

log = get_logger("callcontrol.recovery")


class Recovery:
    """Runs the reconciliation; ``busy`` while it runs (stray channels are not hung up then)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.busy = False
        self.runs = 0

    async def pbx_startup_time(self) -> datetime | None:
        """When the Asterisk we talk to started, or ``None`` if it cannot be read."""
        try:
            info: Any = await self.app.ari.request(protocol.asterisk_info())
        except CallControlError:
            return None
        status = info.get("status", {}) if isinstance(info, dict) else {}
        return parse_time(status.get("startup_time"))

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
        from callcontrol.store.queries import open_calls

        app = self.app
        channels = {c.channel_id: c for c in await app.telephony.list_channels()}
        for session in list(app.calls.sessions.values()):
            if session.channel_id not in channels:
                app.calls.abort(session, "lost", "channel gone after the PBX link came back")
        owned_calls = {s.call_id for s in app.calls.sessions.values()}
        startup = await self.pbx_startup_time()
        handled: set[str] = set()
        for row in await open_calls(app.engine):
            if row.call_id in owned_calls:
                continue
            outcome: Outcome
            if row.channel_id in channels and not app.router.owns(row.channel_id):
                handled.add(row.channel_id)
                closing = await self._take_back(row, channels)
                if closing is None:
                    continue  # adopted: its new task closes the row
                outcome, reason = closing
            elif startup is not None and row.started_at < startup:
                outcome, reason = "lost", "cut by an Asterisk restart"
            else:
                outcome, reason = "interrupted", "daemon died while it owned the call"
            app.store.append(CallEvent(call_id=row.call_id, kind="recovered",
                                       data={"outcome": outcome, "reason": reason}))
            app.store.append(CallClosed(call_id=row.call_id, outcome=outcome, reason=reason))
            log.info("call_recovered", call_id=row.call_id, outcome=outcome)
        for agent_id in app.acd.release_unadopted(set(app.calls.sessions)):
            log.info("agent_call_not_adopted", agent_id=agent_id)
        for channel_id, channel in channels.items():
            if channel_id in handled or app.router.owns(channel_id):
                continue
            if await self._take_unseen_caller(channel):
                continue
            log.info("stray_channel_hangup", channel_id=channel_id)
            with contextlib.suppress(TelephonyError):
                await app.telephony.hangup(channel_id)
        await app.fallback_ledger.resync(startup)  # calls the fallback took while we were down

    async def _take_unseen_caller(self, channel: ChannelInfo) -> bool:
        """A caller in our app that no call row knows (the daemon died before it read the
        StasisStart, or that event is still on its way): take it as a new call, which writes
        its row. ``False`` when ``channel`` is not such a caller."""
        from callcontrol.store.queries import find_by_sip_call_id

        args = channel.app_args
        if len(args) < 2 or args[0] != "inbound" or not args[1]:
            return False
        if await find_by_sip_call_id(self.app.engine, args[1]):
            return False
        if self.app.router.owns(channel.channel_id):  # its StasisStart came in meanwhile
            return True
        log.info("unseen_caller_taken", channel_id=channel.channel_id, sip_call_id=args[1])
        self.app.calls.start_inbound(ChannelEntered(
            channel_id=channel.channel_id, at=channel.created_at or utcnow(), args=args,
            caller_number=channel.caller_number, caller_name=channel.caller_name,
            extension=channel.extension, state=channel.state, sip_call_id=args[1],
        ))
        return True

    async def _take_back(self, row: CallRow, channels: Mapping[str, ChannelInfo]
                         ) -> tuple[Outcome, str] | None:
        """A call whose channel is still in our app: adopt it (``None``) or hand it back /
        hang it up (returns the outcome and reason to close its row with)."""
        from callcontrol.store.queries import call_timeline

        app = self.app
        timeline = await call_timeline(app.engine, row.call_id)
        playbacks = [str(e.data["playback_id"]) for e in timeline
                     if e.kind == "playback_started" and e.data.get("playback_id")]
        for playback_id in reversed(playbacks):
            with contextlib.suppress(TelephonyError):
                await app.telephony.stop_playback(playback_id)
        # No await from here until the new task owns the call's channels (acd.adopt).
        adoption = app.acd.adoption(call_id=row.call_id, caller_channel=row.channel_id,
                                    caller_number=row.caller_number, timeline=timeline,
                                    channels=channels)
        if adoption is not None:
            session = app.calls.adopt(row.call_id, row.channel_id,
                                      caller_number=row.caller_number,
                                      caller_name=row.caller_name, extension=row.extension,
                                      runner=adoption.runner, playbacks=len(playbacks))
            for channel_id in adoption.claims:
                session.claim_channel(channel_id)
            session.log("recovered", adopted=adoption.kind, **adoption.details)
            log.info("call_adopted", call_id=row.call_id, state=adoption.kind)
            return None
        if channels[row.channel_id].bridge_ids:
            with contextlib.suppress(TelephonyError):
                await app.telephony.hangup(row.channel_id)
            return "interrupted", "daemon restarted: caller in a bridge it cannot adopt"
        await self._hand_back(row.channel_id)
        return "interrupted", "daemon restarted: caller handed to fallback"

    async def _hand_back(self, channel_id: str) -> None:
        try:
            await self.app.telephony.continue_in_dialplan(channel_id)
        except TelephonyError as exc:
            log.warning("hand_back_failed", channel_id=channel_id, error=str(exc))
