"""The telephony port: what domain code (flows, ACD, call sessions) may ask of the PBX.

The ARI adapter (``callcontrol.ari.adapter``) implements :class:`Telephony` for real;
:class:`callcontrol.fake_telephony.FakeTelephony` implements it in memory for unit tests.
Domain code never imports ``callcontrol.ari`` or ``callcontrol.ami``.

Events arrive as the typed nouns below, each keyed by the channel it concerns; the app routes
every event to the inbox of the call session that owns that channel.

Media strings are ARI media URIs: ``sound:NAME``, ``digits:123``, ``number:42``,
``characters:abc``, ``recording:NAME``, ``tone:ring``. Several play as one playback, so one key
press stops all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from callcontrol.clock import utcnow


@dataclass(frozen=True, kw_only=True)
class TelephonyEvent:
    """Base of every event the PBX reports about one channel."""

    channel_id: str
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, kw_only=True)
class ChannelEntered(TelephonyEvent):
    """A channel entered our application (ARI StasisStart).

    ``args`` are the Stasis() arguments; for channels we created they start with the role we
    gave them. ``caller_number``/``caller_name`` come from the caller id, ``extension`` is the
    dialed number, ``sip_call_id`` the SIP Call-ID header when known.
    """

    args: tuple[str, ...] = ()
    caller_number: str = ""
    caller_name: str = ""
    extension: str = ""
    state: str = ""
    sip_call_id: str | None = None
    replaced: bool = False


@dataclass(frozen=True, kw_only=True)
class DtmfReceived(TelephonyEvent):
    """A DTMF digit (RFC 4733) was received on the channel."""

    digit: str
    duration_ms: int = 0


@dataclass(frozen=True, kw_only=True)
class PlaybackStarted(TelephonyEvent):
    """A playback started on the channel."""

    playback_id: str


@dataclass(frozen=True, kw_only=True)
class PlaybackFinished(TelephonyEvent):
    """A playback ended: ``state`` is ``done``, ``cancelled`` (stopped) or ``failed``."""

    playback_id: str
    state: str = "done"


@dataclass(frozen=True, kw_only=True)
class RecordingFinished(TelephonyEvent):
    """A recording ended and its file is complete."""

    name: str
    duration_s: float | None = None
    silence_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class RecordingFailed(TelephonyEvent):
    """A recording could not be made."""

    name: str
    cause: str = ""


@dataclass(frozen=True, kw_only=True)
class ChannelStateChanged(TelephonyEvent):
    """The channel's state changed (``Ring``, ``Ringing``, ``Up``, ...)."""

    state: str


@dataclass(frozen=True, kw_only=True)
class DialEnded(TelephonyEvent):
    """A dial placed from this channel (or onto it) ended with an Asterisk dial status.

    ``status`` is one of ``ANSWER``, ``BUSY``, ``NOANSWER``, ``CANCEL``, ``CONGESTION``,
    ``CHANUNAVAIL``.
    """

    status: str


@dataclass(frozen=True, kw_only=True)
class ChannelHungUp(TelephonyEvent):
    """The channel hung up or was destroyed; ``cause`` is the Q.850 cause code.

    ``pbx_shutdown`` is true when Asterisk itself hangs the channel up because it is shutting
    down (a restart or a stop): the call is cut by the PBX, not ended by the caller.
    """

    cause: int = 16
    cause_text: str = ""
    pbx_shutdown: bool = False


@dataclass(frozen=True, kw_only=True)
class ChannelLeftApp(TelephonyEvent):
    """The channel left our application (ARI StasisEnd)."""


def leg_answered(event: object) -> bool:
    """True when ``event`` says an outbound leg answered."""
    return (isinstance(event, ChannelStateChanged) and event.state == "Up") or (
        isinstance(event, DialEnded) and event.status == "ANSWER"
    )


def leg_failed(event: object) -> bool:
    """True when ``event`` says an outbound leg will not answer (or is gone)."""
    return isinstance(event, ChannelHungUp | ChannelLeftApp) or (
        isinstance(event, DialEnded) and event.status != "ANSWER"
    )


@dataclass(frozen=True)
class ChannelInfo:
    """A channel as listed by the PBX, for reconciliation after a (re)connect."""

    channel_id: str
    state: str
    caller_number: str
    extension: str
    created_at: datetime | None = None
    bridge_ids: tuple[str, ...] = ()
    # The arguments the channel entered our app with (``Stasis(APP,inbound,CALL-ID)``).
    app_args: tuple[str, ...] = ()
    caller_name: str = ""


@dataclass(frozen=True)
class BridgeInfo:
    """A bridge as listed by the PBX."""

    bridge_id: str
    channel_ids: tuple[str, ...]


@dataclass(frozen=True)
class HeadsetReachability:
    """A headset's registration changed: ``reachable`` is what the PBX's contact status says
    now (the AMI adapter, :mod:`callcontrol.ami.headsets`, reports these)."""

    endpoint: str
    reachable: bool


class HeadsetStatus(Protocol):
    """Which SIP headsets can ring (the PBX's registered contacts)."""

    async def headset_reachability(self) -> dict[str, bool]:
        """Endpoint -> reachable, for the endpoints with a contact; others are unregistered."""


RecordTerminator = Literal["none", "any", "*", "#"]


class CallRecorderPort(Protocol):
    """Recording a whole call from its caller's channel (Asterisk's MixMonitor, through AMI).

    ``stereo`` writes what the channel sends (the caller) and what it hears (the agents, the
    prompts) as two interleaved 16-bit channels, caller first, into a raw file (``.raw``);
    otherwise one mixed channel into ``file`` as Asterisk's extension names it. Mute writes
    silence (the file's timeline stays true). Each raises a
    :class:`callcontrol.errors.TelephonyError`."""

    async def start_call_recording(self, channel_id: str, file: str, *, stereo: bool) -> None:
        """Start recording the channel into ``file`` (a path as the PBX sees it)."""

    async def stop_call_recording(self, channel_id: str) -> None:
        """Stop recording the channel and close the file."""

    async def mute_call_recording(self, channel_id: str, muted: bool) -> None:
        """Write silence (``muted``) or sound again into the channel's recording."""


class Telephony(Protocol):
    """Call-control commands. Each raises a :class:`callcontrol.errors.TelephonyError`."""

    async def answer(self, channel_id: str) -> None:
        """Answer an inbound channel."""

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        """Hang up a channel (``reason``: an ARI hangup reason such as ``normal``, ``busy``)."""

    async def play(
        self, channel_id: str, media: Sequence[str], playback_id: str, language: str | None = None
    ) -> None:
        """Start playing ``media`` (ARI media URIs) as one playback with a chosen id."""

    async def stop_playback(self, playback_id: str) -> None:
        """Stop a playback; a playback already gone is not an error."""

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        fmt: str = "wav",
        max_duration_s: int = 0,
        max_silence_s: int = 0,
        beep: bool = False,
        terminate_on: RecordTerminator = "none",
    ) -> None:
        """Start recording what the channel sends into ``name`` (overwrites)."""

    async def stop_recording(self, name: str) -> None:
        """Stop a live recording and keep its file."""

    async def mute_recording(self, name: str) -> None:
        """Write silence into a live recording until unmuted (PCI)."""

    async def unmute_recording(self, name: str) -> None:
        """Undo :meth:`mute_recording`."""

    async def continue_in_dialplan(
        self, channel_id: str, context: str | None = None, extension: str | None = None,
        priority: int | None = None,
    ) -> None:
        """Hand the channel back to the dialplan (its fallback after Stasis by default)."""

    async def create_channel(
        self,
        endpoint: str,
        channel_id: str,
        app_args: Sequence[str],
        *,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        """Create an outbound channel to ``endpoint`` (e.g. ``PJSIP/agent1``) in our app.

        The channel enters the app (:class:`ChannelEntered`) before it is dialed.
        """

    async def dial(self, channel_id: str, timeout_s: int, caller_id: str | None = None) -> None:
        """Dial a channel made by :meth:`create_channel`; results come as events."""

    async def ring(self, channel_id: str) -> None:
        """Indicate ringing to the channel."""

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        """Start music on hold on the channel."""

    async def stop_moh(self, channel_id: str) -> None:
        """Stop music on hold on the channel."""

    async def start_silence(self, channel_id: str) -> None:
        """Send silence to the channel until :meth:`stop_silence` or the next playback (keeps
        media flowing, so a call recording's timeline stays true while nothing plays)."""

    async def stop_silence(self, channel_id: str) -> None:
        """Stop the silence of :meth:`start_silence`."""

    async def create_bridge(self, bridge_id: str, kind: str = "mixing") -> None:
        """Create a bridge with a chosen id."""

    async def add_to_bridge(self, bridge_id: str, channel_id: str, *more: str) -> None:
        """Put a channel (and the ``more`` ones, in the same request) into a bridge."""

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None:
        """Take a channel out of a bridge."""

    async def destroy_bridge(self, bridge_id: str) -> None:
        """Destroy a bridge; a bridge already gone is not an error."""

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """Read a channel variable or dialplan function (``PJSIP_HEADER(read,Call-ID)``)."""

    async def list_channels(self) -> list[ChannelInfo]:
        """List the channels in our application."""

    async def list_bridges(self) -> list[BridgeInfo]:
        """List the bridges in our application."""

    async def pbx_started(self) -> datetime | None:
        """When the PBX started, or ``None`` when it cannot be told (never raises)."""

    async def pbx_log_dir(self) -> str:
        """The PBX's log folder (``ASTLOGDIR``), as the PBX sees it."""
