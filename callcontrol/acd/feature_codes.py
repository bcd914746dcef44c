"""Headset feature codes: an agent dials ``*45`` (login), ``*46`` (pause), ``*48`` then a
disposition code (``*481``)... from the headset.

    ChannelEntered("feature", CODE, ENDPOINT) --> FeatureCodes.start --> one owned task:
        board.feature_code -> answer -> the confirmation sound -> hang up

The channel's events reach the task through its own inbox, claimed in the call router.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from callcontrol.acd.agents import AgentState, AgentStateError
from callcontrol.acd.router import Acd
from callcontrol.calls.context import Deadline, playback_id
from callcontrol.calls.inbox import Inbox, inbox_reader
from callcontrol.calls.router import EventRouter
from callcontrol.errors import TelephonyError
from callcontrol.logging import get_logger
from callcontrol.telephony import (
    ChannelEntered,
    ChannelHungUp,
    ChannelLeftApp,
    PlaybackFinished,
    Telephony,
)

_log = get_logger(__name__)

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

Owner = Callable[[Coroutine[Any, Any, None], str], None]


class FeatureCodes:
    """Runs feature-code calls; ``own`` makes each task the ACD service's (cancelled at close)."""

    def __init__(self, core: Acd, telephony: Telephony, router: EventRouter, own: Owner) -> None:
        self.core = core
        self.telephony = telephony
        self.router = router
        self._own = own

    def start(self, event: ChannelEntered) -> None:
        """A headset dialed a feature code (Stasis args ``feature, CODE, ENDPOINT``)."""
        inbox: Inbox = asyncio.Queue()
        self.router.claim(event.channel_id, inbox)
        self._own(self._run(event, inbox), f"feature-{event.channel_id}")

    async def _run(self, event: ChannelEntered, inbox: Inbox) -> None:
        channel = event.channel_id
        code = event.args[1] if len(event.args) > 1 else ""
        endpoint = event.args[2] if len(event.args) > 2 else ""
        try:
            try:
                state = self.core.feature_code(endpoint, code)
                media = FEATURE_SOUNDS.get(state, ("sound:beep",))
                if code.startswith(self.core.settings.disposition_code):
                    media = ("sound:beep",)  # a disposition: the state is not the news
                _log.info("feature_code", endpoint=endpoint, code=code, state=state.value)
            except AgentStateError as exc:
                media = FEATURE_ERROR_SOUND
                _log.warning("feature_code_refused", endpoint=endpoint, code=code,
                             error=str(exc))
            await self.telephony.answer(channel)
            playback = playback_id(channel, 1, "feature")
            await self.telephony.play(channel, media, playback)
            await _wait_playback(inbox, channel, playback, FEATURE_PLAY_TIMEOUT)
        except TelephonyError as exc:
            _log.warning("feature_code_failed", channel_id=channel, error=str(exc))
        finally:
            with contextlib.suppress(TelephonyError):
                await self.telephony.hangup(channel)
            self.router.release(channel, inbox)


async def _wait_playback(inbox: Inbox, channel: str, playback: str, seconds: float) -> None:
    """Until ``playback`` ends or ``channel`` hangs up, at most ``seconds``."""
    deadline, read = Deadline(seconds), inbox_reader(inbox)
    while (event := await deadline.next(read)) is not None:
        if isinstance(event, PlaybackFinished) and event.playback_id == playback:
            return
        if event.channel_id == channel and isinstance(event, ChannelHungUp | ChannelLeftApp):
            return
