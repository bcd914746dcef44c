"""Reconciliation after every ARI (re)connect and at start (DECISIONS.md, "Restart and adopt").

    for each call the daemon tracks whose channel is gone      -> end it as ``lost``
    for each open call row no running task owns:
        its channel still in our app (the daemon died)         -> stop its playback, hand it
                                                                  to the dialplan fallback,
                                                                  close as ``interrupted``
        its channel gone, Asterisk started after the call      -> close as ``lost``
        its channel gone otherwise                             -> close as ``interrupted``
    any other channel of our app that nobody owns              -> hang up

No call row is left open: every call that reached the daemon ends with a final row.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from callcontrol.ari import protocol
from callcontrol.ari.protocol import parse_time
from callcontrol.errors import CallControlError, TelephonyError
from callcontrol.logging import get_logger
from callcontrol.store.records import CallClosed, CallEvent, Outcome

if TYPE_CHECKING:
    from callcontrol.app import App

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
        from callcontrol.store.queries import call_timeline, open_calls

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
                timeline = await call_timeline(app.engine, row.call_id)
                playbacks = [e.data.get("playback_id") for e in timeline
                             if e.kind == "playback_started"]
                await self._hand_back(row.channel_id, [p for p in playbacks if p])
                handled.add(row.channel_id)
                outcome, reason = "interrupted", "daemon restarted: caller handed to fallback"
            elif startup is not None and row.started_at < startup:
                outcome, reason = "lost", "cut by an Asterisk restart"
            else:
                outcome, reason = "interrupted", "daemon died while it owned the call"
            app.store.append(CallEvent(call_id=row.call_id, kind="recovered",
                                       data={"outcome": outcome, "reason": reason}))
            app.store.append(CallClosed(call_id=row.call_id, outcome=outcome, reason=reason))
            log.info("call_recovered", call_id=row.call_id, outcome=outcome)
        for channel_id in channels:
            if channel_id not in handled and not app.router.owns(channel_id):
                log.info("stray_channel_hangup", channel_id=channel_id)
                with contextlib.suppress(TelephonyError):
                    await app.telephony.hangup(channel_id)

    async def _hand_back(self, channel_id: str, playback_ids: list[str]) -> None:
        for playback_id in reversed(playback_ids):
            with contextlib.suppress(TelephonyError):
                await self.app.telephony.stop_playback(playback_id)
        try:
            await self.app.telephony.continue_in_dialplan(channel_id)
        except TelephonyError as exc:
            log.warning("hand_back_failed", channel_id=channel_id, error=str(exc))
