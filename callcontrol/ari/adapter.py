"""The telephony port implemented over ARI, and the pure mapping of ARI events to domain events.

:func:`translate` turns one ARI event into the :mod:`callcontrol.telephony` events the call
sessions consume (none, one, or two for a dial that ended on both legs). :class:`AriTelephony`
sends each port command as one ARI request through an :class:`~callcontrol.ari.client.AriClient`
and hands the translated events to one sink (:meth:`AriTelephony.on_event`): nothing past this
module sees a wire event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from callcontrol import telephony as tel
from callcontrol.ari import protocol as ari
from callcontrol.ari.client import AriClient
from callcontrol.clock import utcnow
from callcontrol.errors import CallControlError, Conflict, NotFound

# Frequent ARI events :func:`translate` maps to nothing (about half of a call's events): the
# client asks Asterisk not to send them (:class:`~callcontrol.ari.client.AriClient`). A queue
# call's bridge alone sends five (entered x2, left x2, destroyed), each carrying the whole
# bridge and channel: the domain learns the same from its own requests and the hang-ups.
IGNORED_EVENTS = ("ChannelVarset", "ChannelConnectedLine", "ChannelEnteredBridge",
                  "ChannelLeftBridge", "BridgeDestroyed")

# Dial statuses ARI reports while a dial is still in progress; any other non-empty one ends it.
_DIAL_IN_PROGRESS = frozenset({"", "RINGING", "PROGRESS", "PROCEEDING"})

# Q.850 "normal clearing", for hangup requests that carry no cause.
_NORMAL_CLEARING = 16
# A soft hangup request's ``cause`` holds Asterisk's AST_SOFTHANGUP_* flags: this one is set on
# every channel when Asterisk shuts down (``core stop``/``core restart``).
_SOFTHANGUP_SHUTDOWN = 0x04


def sip_call_id_of(event: ari.StasisStart) -> str | None:
    """The caller's SIP Call-ID: the dialplan passes it as ``Stasis(APP,inbound,CALL-ID)``;
    otherwise the channel's ``protocol_id`` when the driver reports one."""
    args = event.args
    if len(args) >= 2 and args[0] == "inbound" and args[1]:
        return args[1]
    return event.channel.protocol_id or None


def stasis_args_of(channel: ari.Channel) -> tuple[str, ...]:
    """The arguments of the ``Stasis(APP,ARGS...)`` a listed channel is in (empty if none)."""
    if channel.app_name.lower() != "stasis":
        return ()
    return tuple(channel.app_data.split(",")[1:])


def translate(event: ari.AriEvent) -> list[tel.TelephonyEvent]:
    """The domain events one ARI event means (an empty list for those the domain ignores)."""
    at = event.timestamp or utcnow()
    match event:
        case ari.StasisStart(channel=ch):
            return [
                tel.ChannelEntered(
                    channel_id=ch.id,
                    at=at,
                    args=event.args,
                    caller_number=ch.caller_number,
                    caller_name=ch.caller_name,
                    extension=ch.exten,
                    state=ch.state,
                    sip_call_id=sip_call_id_of(event),
                    replaced=event.replace_channel is not None,
                )
            ]
        case ari.StasisEnd(channel=ch):
            return [tel.ChannelLeftApp(channel_id=ch.id, at=at)]
        case ari.ChannelDtmfReceived(channel=ch, digit=digit, duration_ms=duration):
            return [tel.DtmfReceived(channel_id=ch.id, at=at, digit=digit, duration_ms=duration)]
        case ari.ChannelStateChange(channel=ch):
            return [tel.ChannelStateChanged(channel_id=ch.id, at=at, state=ch.state)]
        case ari.ChannelHangupRequest(channel=ch, cause=cause, soft=soft):
            code = _NORMAL_CLEARING if cause is None else cause
            shutdown = soft and bool((cause or 0) & _SOFTHANGUP_SHUTDOWN)
            return [tel.ChannelHungUp(channel_id=ch.id, at=at, cause=code, pbx_shutdown=shutdown)]
        case ari.ChannelDestroyed(channel=ch, cause=cause, cause_txt=text):
            return [tel.ChannelHungUp(channel_id=ch.id, at=at, cause=cause, cause_text=text)]
        case ari.PlaybackStarted(playback=pb) if pb.channel_id:
            return [tel.PlaybackStarted(channel_id=pb.channel_id, at=at, playback_id=pb.id)]
        case ari.PlaybackFinished(playback=pb) if pb.channel_id:
            return [
                tel.PlaybackFinished(
                    channel_id=pb.channel_id, at=at, playback_id=pb.id, state=pb.state or "done"
                )
            ]
        case ari.RecordingFinished(recording=rec) if rec.channel_id:
            return [
                tel.RecordingFinished(
                    channel_id=rec.channel_id,
                    at=at,
                    name=rec.name,
                    duration_s=rec.duration,
                    silence_s=rec.silence_duration,
                )
            ]
        case ari.RecordingFailed(recording=rec) if rec.channel_id:
            failed = tel.RecordingFailed(
                channel_id=rec.channel_id, at=at, name=rec.name, cause=rec.cause
            )
            return [failed]
        case ari.Dial(peer=peer, caller=caller, dialstatus=status) if (
            status not in _DIAL_IN_PROGRESS
        ):
            ended: list[tel.TelephonyEvent] = [
                tel.DialEnded(channel_id=peer.id, at=at, status=status)
            ]
            if caller is not None and caller.id != peer.id:
                ended.append(tel.DialEnded(channel_id=caller.id, at=at, status=status))
            return ended
    return []


class AriTelephony:
    """:class:`callcontrol.telephony.Telephony` over ARI: one REST call per command (sent with
    :meth:`AriClient.send`: a command's answer is not decoded).

    Errors are those of :meth:`AriClient.request`; :meth:`stop_playback` and
    :meth:`destroy_bridge` treat an object already gone as done.
    """

    def __init__(self, client: AriClient) -> None:
        self._client = client

    def on_event(self, sink: Callable[[tel.TelephonyEvent], None]) -> None:
        """Hand every ARI event, translated to domain events, to ``sink`` in arrival order."""

        async def deliver(event: ari.AriEvent) -> None:
            for translated in translate(event):
                sink(translated)

        self._client.on_event(deliver)

    async def answer(self, channel_id: str) -> None:
        """Answer an inbound channel."""
        await self._client.send(ari.answer(channel_id))

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        """Hang up a channel with an ARI hangup reason."""
        await self._client.send(ari.hangup(channel_id, reason))

    async def play(
        self, channel_id: str, media: Sequence[str], playback_id: str, language: str | None = None
    ) -> None:
        """Start ``media`` as one playback with the id we chose."""
        await self._client.send(ari.play(channel_id, media, playback_id, language))

    async def stop_playback(self, playback_id: str) -> None:
        """Stop a playback; one already finished is not an error."""
        try:
            await self._client.send(ari.stop_playback(playback_id))
        except NotFound:
            return

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        fmt: str = "wav",
        max_duration_s: int = 0,
        max_silence_s: int = 0,
        beep: bool = False,
        terminate_on: tel.RecordTerminator = "none",
    ) -> None:
        """Start recording the channel into ``name`` (overwriting)."""
        await self._client.send(
            ari.record(
                channel_id,
                name,
                fmt=fmt,
                max_duration_s=max_duration_s,
                max_silence_s=max_silence_s,
                beep=beep,
                terminate_on=terminate_on,
            )
        )

    async def stop_recording(self, name: str) -> None:
        """Stop a live recording and keep its file."""
        await self._client.send(ari.stop_recording(name))

    async def mute_recording(self, name: str) -> None:
        """Write silence into a live recording until unmuted."""
        await self._client.send(ari.mute_recording(name))

    async def unmute_recording(self, name: str) -> None:
        """Undo :meth:`mute_recording`."""
        await self._client.send(ari.unmute_recording(name))

    async def continue_in_dialplan(
        self,
        channel_id: str,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
    ) -> None:
        """Hand the channel back to the dialplan."""
        request = ari.continue_in_dialplan(channel_id, context, extension, priority)
        await self._client.send(request)

    async def create_channel(
        self,
        endpoint: str,
        channel_id: str,
        app_args: Sequence[str],
        *,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        """Create a channel into our app. ``caller_id`` (``"Name" <number>`` or a number) is
        what the called party sees: Asterisk presents an outbound channel's *connected line*
        (PJSIP's From, a Local channel's far half), so both it and the caller id are set."""
        values = dict(variables or {})
        if caller_id:
            values["CALLERID(all)"] = caller_id
            values["CONNECTEDLINE(all)"] = caller_id
        await self._client.send(
            ari.create_channel(endpoint, self._client.app, channel_id, app_args, variables=values)
        )

    async def dial(self, channel_id: str, timeout_s: int, caller_id: str | None = None) -> None:
        """Dial a created channel; ``caller_id`` here is the id of the *channel* it is dialed
        for (ARI's ``caller``), which links the two legs in the Dial events."""
        await self._client.send(ari.dial(channel_id, timeout_s, caller_id))

    async def ring(self, channel_id: str) -> None:
        """Indicate ringing to the channel."""
        await self._client.send(ari.ring(channel_id))

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        """Start music on hold."""
        await self._client.send(ari.start_moh(channel_id, moh_class))

    async def stop_moh(self, channel_id: str) -> None:
        """Stop music on hold."""
        await self._client.send(ari.stop_moh(channel_id))

    async def start_silence(self, channel_id: str) -> None:
        """Send silence (Asterisk's silence generator; a playback ends it)."""
        await self._client.send(ari.start_silence(channel_id))

    async def stop_silence(self, channel_id: str) -> None:
        """Stop sending silence."""
        await self._client.send(ari.stop_silence(channel_id))

    async def create_bridge(self, bridge_id: str, kind: str = "mixing") -> None:
        """Create a bridge with a chosen id."""
        await self._client.send(ari.create_bridge(bridge_id, kind))

    async def add_to_bridge(self, bridge_id: str, channel_id: str, *more: str) -> None:
        """Put channels into a bridge: one request, whatever their number."""
        await self._client.send(ari.add_to_bridge(bridge_id, ",".join((channel_id, *more))))

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None:
        """Take a channel out of a bridge."""
        await self._client.send(ari.remove_from_bridge(bridge_id, channel_id))

    async def destroy_bridge(self, bridge_id: str) -> None:
        """Destroy a bridge; one already gone is not an error. A bridge being destroyed leaves
        the app before Asterisk forgets it: a second DELETE meanwhile is answered 409 "Bridge
        not in Stasis application" instead of 404 (seen live), and means the same."""
        try:
            await self._client.send(ari.destroy_bridge(bridge_id))
        except NotFound:
            return
        except Conflict as exc:
            if "not in Stasis" not in str(exc):
                raise

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """A channel variable's value; ``None`` when it is not set (a gone channel raises)."""
        try:
            body = await self._client.request(ari.get_variable(channel_id, name))
        except NotFound as exc:
            if "variable" in exc.message.lower():
                return None
            raise
        value = body.get("value") if isinstance(body, dict) else None
        return None if value is None else str(value)

    async def _app_members(self) -> tuple[set[str], set[str]]:
        body = await self._client.request(ari.get_application(self._client.app))
        return set(body.get("channel_ids", ())), set(body.get("bridge_ids", ()))

    async def _bridges(self) -> list[ari.Bridge]:
        return [ari.Bridge.from_json(b) for b in await self._client.request(ari.list_bridges())]

    async def list_channels(self) -> list[tel.ChannelInfo]:
        """The channels our application is subscribed to, with the bridges each is in."""
        channel_ids, _ = await self._app_members()
        listed = await self._client.request(ari.list_channels())
        channels = [ari.Channel.from_json(c) for c in listed]
        bridges_of: dict[str, list[str]] = {}
        for bridge in await self._bridges():
            for member in bridge.channels:
                bridges_of.setdefault(member, []).append(bridge.id)
        return [
            tel.ChannelInfo(
                channel_id=ch.id,
                state=ch.state,
                caller_number=ch.caller_number,
                extension=ch.exten,
                created_at=ch.created_at,
                bridge_ids=tuple(bridges_of.get(ch.id, ())),
                app_args=stasis_args_of(ch),
                caller_name=ch.caller_name,
            )
            for ch in channels
            if ch.id in channel_ids
        ]

    async def pbx_started(self) -> datetime | None:
        """When Asterisk started (``/asterisk/info``), ``None`` if it cannot be read."""
        try:
            info: Any = await self._client.request(ari.asterisk_info())
        except CallControlError:
            return None
        status = info.get("status", {}) if isinstance(info, dict) else {}
        return ari.parse_time(status.get("startup_time"))

    async def pbx_log_dir(self) -> str:
        """Asterisk's ``ASTLOGDIR``."""
        answer: Any = await self._client.request(ari.get_global_variable("ASTLOGDIR"))
        if not isinstance(answer, dict) or not answer.get("value"):
            raise NotFound(404, "ASTLOGDIR is not set")
        return str(answer["value"])

    async def list_bridges(self) -> list[tel.BridgeInfo]:
        """The bridges our application is subscribed to or that hold one of its channels."""
        channel_ids, bridge_ids = await self._app_members()
        return [
            tel.BridgeInfo(bridge_id=b.id, channel_ids=b.channels)
            for b in await self._bridges()
            if b.id in bridge_ids or channel_ids.intersection(b.channels)
        ]
