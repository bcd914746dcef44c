"""Headset feature codes: an agent dials ``*45`` (login), ``*46`` (pause), ``*48`` then a
disposition code (``*481``)... from the headset.

    ChannelEntered("feature", CODE, ENDPOINT) --> the call manager: a service call -->
        FeatureCodes.run: board.feature_code -> answer -> the confirmation sound -> hang up

The call is a call session with no row (the manager owns its task); it reads its channel's
events like any call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from callcontrol.acd.agents import AgentState, AgentStateError
from callcontrol.acd.router import Acd
from callcontrol.calls.context import CallerHungUp, play_and_wait
from callcontrol.calls.session import CallSession
from callcontrol.errors import TelephonyError
from callcontrol.logging import get_logger
from callcontrol.telephony import ChannelEntered

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

class FeatureCodes:
    """Runs feature-code calls (the call manager's ``feature_handler``)."""

    def __init__(self, core: Acd) -> None:
        self.core = core

    async def run(self, session: CallSession, event: ChannelEntered) -> None:
        """A headset dialed a feature code (Stasis args ``feature, CODE, ENDPOINT``)."""
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
            await session.telephony.answer(channel)
            await play_and_wait(session, media, session.next_playback_id("feature"),
                                FEATURE_PLAY_TIMEOUT)
        except CallerHungUp:
            pass
        except TelephonyError as exc:
            _log.warning("feature_code_failed", channel_id=channel, error=str(exc))
        finally:
            await session.hang_up_unless_ended("completed")
