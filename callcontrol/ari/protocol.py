"""ARI without I/O: JSON events in, typed events out; REST calls as :class:`Request` values.

Nothing here touches a socket or the event loop (like h11): :func:`parse_event` turns one events
WebSocket message into a frozen dataclass (an :class:`UnknownEvent` when the type is unknown or
the message is malformed), the request builders return what to send, and
:func:`error_for_status` names the error an HTTP status means. ``callcontrol.ari.client`` does
the I/O around it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from callcontrol.errors import Conflict, NotFound, PbxRefused, Unprocessable

# --------------------------------------------------------------------------------------------
# Objects carried by events


def parse_time(value: Any) -> datetime | None:
    """An ARI timestamp (``2024-05-01T10:00:00.123+0000``) as an aware datetime, or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True)
class Channel:
    """An ARI channel snapshot, as carried by an event or listed by ``GET /channels``."""

    id: str
    name: str = ""
    state: str = ""
    caller_number: str = ""
    caller_name: str = ""
    connected_number: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    priority: int = 0
    app_name: str = ""
    app_data: str = ""
    language: str = ""
    protocol_id: str = ""
    created_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Channel:
        """Build from ARI's ``Channel`` JSON (``id`` is required)."""
        caller = data.get("caller") or {}
        connected = data.get("connected") or {}
        dialplan = data.get("dialplan") or {}
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            state=str(data.get("state", "")),
            caller_number=str(caller.get("number", "")),
            caller_name=str(caller.get("name", "")),
            connected_number=str(connected.get("number", "")),
            connected_name=str(connected.get("name", "")),
            context=str(dialplan.get("context", "")),
            exten=str(dialplan.get("exten", "")),
            priority=int(dialplan.get("priority", 0)),
            app_name=str(dialplan.get("app_name", "")),
            app_data=str(dialplan.get("app_data", "")),
            language=str(data.get("language", "")),
            protocol_id=str(data.get("protocol_id", "")),
            created_at=parse_time(data.get("creationtime")),
        )


@dataclass(frozen=True)
class Bridge:
    """An ARI bridge snapshot."""

    id: str
    technology: str = ""
    bridge_type: str = ""
    bridge_class: str = ""
    creator: str = ""
    name: str = ""
    channels: tuple[str, ...] = ()
    created_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Bridge:
        """Build from ARI's ``Bridge`` JSON."""
        return cls(
            id=str(data["id"]),
            technology=str(data.get("technology", "")),
            bridge_type=str(data.get("bridge_type", "")),
            bridge_class=str(data.get("bridge_class", "")),
            creator=str(data.get("creator", "")),
            name=str(data.get("name", "")),
            channels=tuple(str(c) for c in data.get("channels", ())),
            created_at=parse_time(data.get("creationtime")),
        )


def channel_of_target(target_uri: str) -> str | None:
    """The channel id of a ``channel:ID`` target URI (``None`` for bridges and others)."""
    kind, sep, ident = target_uri.partition(":")
    return ident if sep and kind == "channel" and ident else None


@dataclass(frozen=True)
class Playback:
    """An ARI playback: ``state`` is ``queued``, ``playing``, ``done``, ``cancelled``,
    ``failed``..."""

    id: str
    media_uri: str = ""
    target_uri: str = ""
    language: str = ""
    state: str = ""

    @property
    def channel_id(self) -> str | None:
        """The channel it plays to, when it plays to a channel."""
        return channel_of_target(self.target_uri)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Playback:
        """Build from ARI's ``Playback`` JSON."""
        return cls(
            id=str(data["id"]),
            media_uri=str(data.get("media_uri", "")),
            target_uri=str(data.get("target_uri", "")),
            language=str(data.get("language", "")),
            state=str(data.get("state", "")),
        )


@dataclass(frozen=True)
class LiveRecording:
    """An ARI live recording; durations in seconds when Asterisk reports them."""

    name: str
    format: str = ""
    target_uri: str = ""
    state: str = ""
    duration: float | None = None
    talking_duration: float | None = None
    silence_duration: float | None = None
    cause: str = ""

    @property
    def channel_id(self) -> str | None:
        """The channel it records, when it records a channel."""
        return channel_of_target(self.target_uri)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LiveRecording:
        """Build from ARI's ``LiveRecording`` JSON."""

        def seconds(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, int | float) else None

        return cls(
            name=str(data["name"]),
            format=str(data.get("format", "")),
            target_uri=str(data.get("target_uri", "")),
            state=str(data.get("state", "")),
            duration=seconds("duration"),
            talking_duration=seconds("talking_duration"),
            silence_duration=seconds("silence_duration"),
            cause=str(data.get("cause", "")),
        )


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, kw_only=True)
class AriEvent:
    """Base of every event from the events WebSocket."""

    type: str
    application: str = ""
    timestamp: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class StasisStart(AriEvent):
    """A channel entered the application; ``args`` are the Stasis() arguments."""

    channel: Channel
    args: tuple[str, ...] = ()
    replace_channel: Channel | None = None


@dataclass(frozen=True, kw_only=True)
class StasisEnd(AriEvent):
    """A channel left the application."""

    channel: Channel


@dataclass(frozen=True, kw_only=True)
class ChannelDtmfReceived(AriEvent):
    """A DTMF digit was received on the channel."""

    channel: Channel
    digit: str
    duration_ms: int = 0


@dataclass(frozen=True, kw_only=True)
class ChannelStateChange(AriEvent):
    """The channel's state changed (the new state is ``channel.state``)."""

    channel: Channel


@dataclass(frozen=True, kw_only=True)
class ChannelHangupRequest(AriEvent):
    """A hangup was requested on the channel."""

    channel: Channel
    cause: int | None = None
    soft: bool = False


@dataclass(frozen=True, kw_only=True)
class ChannelDestroyed(AriEvent):
    """The channel is gone; ``cause`` is its Q.850 hangup cause."""

    channel: Channel
    cause: int = 0
    cause_txt: str = ""


@dataclass(frozen=True, kw_only=True)
class PlaybackStarted(AriEvent):
    """A playback started."""

    playback: Playback


@dataclass(frozen=True, kw_only=True)
class PlaybackFinished(AriEvent):
    """A playback ended (done, stopped or failed: see ``playback.state``)."""

    playback: Playback


@dataclass(frozen=True, kw_only=True)
class RecordingStarted(AriEvent):
    """A live recording started."""

    recording: LiveRecording


@dataclass(frozen=True, kw_only=True)
class RecordingFinished(AriEvent):
    """A live recording ended and its file is complete."""

    recording: LiveRecording


@dataclass(frozen=True, kw_only=True)
class RecordingFailed(AriEvent):
    """A live recording failed."""

    recording: LiveRecording


@dataclass(frozen=True, kw_only=True)
class Dial(AriEvent):
    """Progress of a dial: an empty ``dialstatus`` means it started, otherwise it ended."""

    peer: Channel
    caller: Channel | None = None
    dialstatus: str = ""
    dialstring: str = ""
    forward: str = ""


@dataclass(frozen=True, kw_only=True)
class ChannelEnteredBridge(AriEvent):
    """A channel entered a bridge."""

    bridge: Bridge
    channel: Channel | None = None


@dataclass(frozen=True, kw_only=True)
class ChannelLeftBridge(AriEvent):
    """A channel left a bridge."""

    bridge: Bridge
    channel: Channel


@dataclass(frozen=True, kw_only=True)
class BridgeDestroyed(AriEvent):
    """A bridge was destroyed."""

    bridge: Bridge


@dataclass(frozen=True, kw_only=True)
class ApplicationReplaced(AriEvent):
    """Another WebSocket registered our application: this one receives nothing more."""


@dataclass(frozen=True, kw_only=True)
class ChannelVarset(AriEvent):
    """A channel (or global, when ``channel`` is ``None``) variable was set."""

    variable: str
    value: str
    channel: Channel | None = None


@dataclass(frozen=True, kw_only=True)
class ChannelConnectedLine(AriEvent):
    """The channel's connected line changed."""

    channel: Channel


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(AriEvent):
    """An event of a type we do not model, or a malformed one; ``raw`` is the message."""

    raw: Mapping[str, Any] = field(default_factory=dict)


def _channel(data: Mapping[str, Any], key: str = "channel") -> Channel:
    return Channel.from_json(data[key])


def _optional_channel(data: Mapping[str, Any], key: str) -> Channel | None:
    value = data.get(key)
    return Channel.from_json(value) if value else None


_Builder = Callable[[Mapping[str, Any], dict[str, Any]], AriEvent]

_BUILDERS: dict[str, _Builder] = {
    "StasisStart": lambda d, b: StasisStart(
        **b,
        channel=_channel(d),
        args=tuple(str(a) for a in d.get("args", ())),
        replace_channel=_optional_channel(d, "replace_channel"),
    ),
    "StasisEnd": lambda d, b: StasisEnd(**b, channel=_channel(d)),
    "ChannelDtmfReceived": lambda d, b: ChannelDtmfReceived(
        **b, channel=_channel(d), digit=str(d["digit"]), duration_ms=int(d.get("duration_ms", 0))
    ),
    "ChannelStateChange": lambda d, b: ChannelStateChange(**b, channel=_channel(d)),
    "ChannelHangupRequest": lambda d, b: ChannelHangupRequest(
        **b,
        channel=_channel(d),
        cause=int(d["cause"]) if d.get("cause") is not None else None,
        soft=bool(d.get("soft", False)),
    ),
    "ChannelDestroyed": lambda d, b: ChannelDestroyed(
        **b,
        channel=_channel(d),
        cause=int(d.get("cause", 0)),
        cause_txt=str(d.get("cause_txt", "")),
    ),
    "PlaybackStarted": lambda d, b: PlaybackStarted(
        **b, playback=Playback.from_json(d["playback"])
    ),
    "PlaybackFinished": lambda d, b: PlaybackFinished(
        **b, playback=Playback.from_json(d["playback"])
    ),
    "RecordingStarted": lambda d, b: RecordingStarted(
        **b, recording=LiveRecording.from_json(d["recording"])
    ),
    "RecordingFinished": lambda d, b: RecordingFinished(
        **b, recording=LiveRecording.from_json(d["recording"])
    ),
    "RecordingFailed": lambda d, b: RecordingFailed(
        **b, recording=LiveRecording.from_json(d["recording"])
    ),
    "Dial": lambda d, b: Dial(
        **b,
        peer=_channel(d, "peer"),
        caller=_optional_channel(d, "caller"),
        dialstatus=str(d.get("dialstatus", "")),
        dialstring=str(d.get("dialstring", "")),
        forward=str(d.get("forward", "")),
    ),
    "ChannelEnteredBridge": lambda d, b: ChannelEnteredBridge(
        **b, bridge=Bridge.from_json(d["bridge"]), channel=_optional_channel(d, "channel")
    ),
    "ChannelLeftBridge": lambda d, b: ChannelLeftBridge(
        **b, bridge=Bridge.from_json(d["bridge"]), channel=_channel(d)
    ),
    "BridgeDestroyed": lambda d, b: BridgeDestroyed(**b, bridge=Bridge.from_json(d["bridge"])),
    "ApplicationReplaced": lambda d, b: ApplicationReplaced(**b),
    "ChannelVarset": lambda d, b: ChannelVarset(
        **b,
        variable=str(d["variable"]),
        value=str(d.get("value", "")),
        channel=_optional_channel(d, "channel"),
    ),
    "ChannelConnectedLine": lambda d, b: ChannelConnectedLine(**b, channel=_channel(d)),
}


def parse_event(data: Mapping[str, Any]) -> AriEvent:
    """Turn one decoded events-WebSocket message into a typed event.

    Unknown types and messages missing a required field become :class:`UnknownEvent`.
    """
    event_type = str(data.get("type", ""))
    base: dict[str, Any] = {
        "type": event_type,
        "application": str(data.get("application", "")),
        "timestamp": parse_time(data.get("timestamp")),
    }
    builder = _BUILDERS.get(event_type)
    if builder is not None:
        try:
            return builder(data, base)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    return UnknownEvent(**base, raw=dict(data))


def parse_message(text: str | bytes) -> AriEvent:
    """Decode one WebSocket text frame and parse it (bad JSON gives an :class:`UnknownEvent`)."""
    try:
        data = json.loads(text)
    except ValueError:
        return UnknownEvent(type="", raw={"text": text if isinstance(text, str) else repr(text)})
    if not isinstance(data, dict):
        return UnknownEvent(type="", raw={"json": data})
    return parse_event(data)


# --------------------------------------------------------------------------------------------
# Requests


Method = Literal["GET", "POST", "PUT", "DELETE"]


@dataclass(frozen=True)
class Request:
    """One ARI REST call: ``path`` is relative to ``/ari`` and already URL-escaped."""

    method: Method
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    json: Any = None


_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]*")


def _seg(value: str) -> str:
    """Escape one path segment (ids may hold any character; most need nothing)."""
    return value if _PLAIN_SEGMENT.fullmatch(value) else quote(value, safe="")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _params(**values: str | int | bool | None) -> dict[str, str]:
    """Drop ``None`` values and render the rest as ARI expects them."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = _bool(value) if isinstance(value, bool) else str(value)
    return out


def _variables_body(variables: Mapping[str, str] | None) -> Any:
    return {"variables": dict(variables)} if variables else None


def asterisk_info() -> Request:
    """``GET /asterisk/info``."""
    return Request("GET", "/asterisk/info")


def get_global_variable(name: str) -> Request:
    """``GET /asterisk/variable``: a global variable (``ASTLOGDIR``...)."""
    return Request("GET", "/asterisk/variable", {"variable": name})


def list_applications() -> Request:
    """``GET /applications``: the registered Stasis applications."""
    return Request("GET", "/applications")


def get_application(app: str) -> Request:
    """``GET /applications/{app}``: its subscribed channel and bridge ids."""
    return Request("GET", f"/applications/{_seg(app)}")


def filter_events(app: str, disallowed: Sequence[str]) -> Request:
    """``PUT /applications/{app}/eventFilter``: Asterisk stops sending these event types."""
    body = {"disallowed": [{"type": name} for name in disallowed]}
    return Request("PUT", f"/applications/{_seg(app)}/eventFilter", json=body)


def answer(channel_id: str) -> Request:
    """Answer a channel."""
    return Request("POST", f"/channels/{_seg(channel_id)}/answer")


def hangup(channel_id: str, reason: str = "normal") -> Request:
    """Hang up a channel with an ARI reason (``normal``, ``busy``, ``congestion``...)."""
    return Request("DELETE", f"/channels/{_seg(channel_id)}", _params(reason=reason))


def play(
    channel_id: str, media: Sequence[str], playback_id: str, language: str | None = None
) -> Request:
    """Play one or more media URIs on a channel as one playback with a chosen id."""
    if not media:
        raise ValueError("play needs at least one media URI")
    return Request(
        "POST",
        f"/channels/{_seg(channel_id)}/play/{_seg(playback_id)}",
        _params(media=",".join(media), lang=language),
    )


def stop_playback(playback_id: str) -> Request:
    """Stop a playback."""
    return Request("DELETE", f"/playbacks/{_seg(playback_id)}")


def record(
    channel_id: str,
    name: str,
    *,
    fmt: str = "wav",
    max_duration_s: int = 0,
    max_silence_s: int = 0,
    beep: bool = False,
    terminate_on: str = "none",
) -> Request:
    """Record a channel into ``name`` (an existing recording of that name is overwritten)."""
    return Request(
        "POST",
        f"/channels/{_seg(channel_id)}/record",
        _params(
            name=name,
            format=fmt,
            maxDurationSeconds=max_duration_s,
            maxSilenceSeconds=max_silence_s,
            ifExists="overwrite",
            beep=beep,
            terminateOn=terminate_on,
        ),
    )


def stop_recording(name: str) -> Request:
    """Stop a live recording and keep its file."""
    return Request("POST", f"/recordings/live/{_seg(name)}/stop")


def mute_recording(name: str) -> Request:
    """Write silence into a live recording until unmuted."""
    return Request("POST", f"/recordings/live/{_seg(name)}/mute")


def unmute_recording(name: str) -> Request:
    """Stop writing silence into a live recording."""
    return Request("DELETE", f"/recordings/live/{_seg(name)}/mute")


def continue_in_dialplan(
    channel_id: str,
    context: str | None = None,
    extension: str | None = None,
    priority: int | None = None,
) -> Request:
    """Send a channel back to the dialplan (after its Stasis() by default)."""
    return Request(
        "POST",
        f"/channels/{_seg(channel_id)}/continue",
        _params(context=context, extension=extension, priority=priority),
    )


def create_channel(
    endpoint: str,
    app: str,
    channel_id: str,
    app_args: Sequence[str] = (),
    *,
    variables: Mapping[str, str] | None = None,
    other_channel_id: str | None = None,
    originator: str | None = None,
) -> Request:
    """Create (not dial) a channel to ``endpoint`` that enters ``app``."""
    return Request(
        "POST",
        "/channels/create",
        _params(
            endpoint=endpoint,
            app=app,
            appArgs=",".join(app_args) if app_args else None,
            channelId=channel_id,
            otherChannelId=other_channel_id,
            originator=originator,
        ),
        _variables_body(variables),
    )


def dial(channel_id: str, timeout_s: int, caller: str | None = None) -> Request:
    """Dial a created channel; ``caller`` is the id of the channel it is dialed for."""
    return Request(
        "POST",
        f"/channels/{_seg(channel_id)}/dial",
        _params(timeout=timeout_s, caller=caller),
    )


def originate(
    endpoint: str,
    channel_id: str,
    *,
    app: str | None = None,
    app_args: Sequence[str] = (),
    context: str | None = None,
    extension: str | None = None,
    priority: int | None = None,
    caller_id: str | None = None,
    timeout_s: int | None = None,
    variables: Mapping[str, str] | None = None,
) -> Request:
    """Create and dial a channel in one call, into ``app`` or to a dialplan place."""
    return Request(
        "POST",
        f"/channels/{_seg(channel_id)}",
        _params(
            endpoint=endpoint,
            app=app,
            appArgs=",".join(app_args) if app_args else None,
            context=context,
            extension=extension,
            priority=priority,
            callerId=caller_id,
            timeout=timeout_s,
        ),
        _variables_body(variables),
    )


def ring(channel_id: str) -> Request:
    """Indicate ringing to a channel."""
    return Request("POST", f"/channels/{_seg(channel_id)}/ring")


def start_moh(channel_id: str, moh_class: str | None = None) -> Request:
    """Start music on hold on a channel."""
    return Request("POST", f"/channels/{_seg(channel_id)}/moh", _params(mohClass=moh_class))


def stop_moh(channel_id: str) -> Request:
    """Stop music on hold on a channel."""
    return Request("DELETE", f"/channels/{_seg(channel_id)}/moh")


def start_silence(channel_id: str) -> Request:
    """Play silence to a channel (until stopped or other media plays)."""
    return Request("POST", f"/channels/{_seg(channel_id)}/silence")


def stop_silence(channel_id: str) -> Request:
    """Stop playing silence to a channel."""
    return Request("DELETE", f"/channels/{_seg(channel_id)}/silence")


def create_bridge(bridge_id: str, kind: str = "mixing", name: str | None = None) -> Request:
    """Create a bridge with a chosen id (``kind``: comma-separated ARI bridge types)."""
    return Request("POST", f"/bridges/{_seg(bridge_id)}", _params(type=kind, name=name))


def add_to_bridge(bridge_id: str, channel_id: str, role: str | None = None) -> Request:
    """Put a channel into a bridge (``channel_id``: one id, or several joined by commas)."""
    return Request(
        "POST", f"/bridges/{_seg(bridge_id)}/addChannel", _params(channel=channel_id, role=role)
    )


def remove_from_bridge(bridge_id: str, channel_id: str) -> Request:
    """Take a channel out of a bridge."""
    return Request("POST", f"/bridges/{_seg(bridge_id)}/removeChannel", _params(channel=channel_id))


def destroy_bridge(bridge_id: str) -> Request:
    """Destroy a bridge."""
    return Request("DELETE", f"/bridges/{_seg(bridge_id)}")


def get_variable(channel_id: str, name: str) -> Request:
    """Read a channel variable or dialplan function."""
    return Request("GET", f"/channels/{_seg(channel_id)}/variable", _params(variable=name))


def list_channels() -> Request:
    """``GET /channels``: every channel Asterisk has."""
    return Request("GET", "/channels")


def list_bridges() -> Request:
    """``GET /bridges``: every bridge Asterisk has."""
    return Request("GET", "/bridges")


def snoop(
    channel_id: str,
    snoop_id: str,
    app: str,
    *,
    spy: str = "none",
    whisper: str = "none",
    app_args: Sequence[str] = (),
) -> Request:
    """Create a snoop channel on ``channel_id`` (``spy``/``whisper``: none, in, out, both)."""
    return Request(
        "POST",
        f"/channels/{_seg(channel_id)}/snoop/{_seg(snoop_id)}",
        _params(
            app=app,
            spy=spy,
            whisper=whisper,
            appArgs=",".join(app_args) if app_args else None,
        ),
    )


# --------------------------------------------------------------------------------------------
# Responses


def error_for_status(status: int, body: Any) -> PbxRefused:
    """The named error for an ARI error response (``body`` is its decoded JSON or text)."""
    if isinstance(body, Mapping) and "message" in body:
        message = str(body["message"])
    else:
        message = str(body) if body else ""
    if status == 404:
        return NotFound(status, message)
    if status == 409:
        return Conflict(status, message)
    if status in (400, 422):
        return Unprocessable(status, message)
    return PbxRefused(status, message)
