"""An in-memory :class:`callcontrol.telephony.Telephony` for unit tests and the simulator.

It records every command as ``(name, args)`` in :attr:`FakeTelephony.commands` and can be told
to fail a command. It does not generate events by itself: a test (or the simulator) feeds the
events it wants into the call's inbox, or registers :attr:`FakeTelephony.on_command` to react.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from callcontrol.errors import NotFound, TelephonyError
from callcontrol.telephony import BridgeInfo, ChannelInfo, RecordTerminator

Command = tuple[str, dict[str, Any]]


class FakeTelephony:
    """Records commands; optional hook ``on_command(name, args)`` runs after each one."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.fail: dict[str, TelephonyError] = {}
        self.on_command: Callable[[str, dict[str, Any]], None] | None = None
        self.variables: dict[tuple[str, str], str] = {}
        self.bridges: dict[str, list[str]] = {}
        self.channels: dict[str, ChannelInfo] = {}
        self.started: datetime | None = None
        self.log_dir = "/var/log/asterisk"

    def _do(self, command: str, /, **args: Any) -> None:
        self.commands.append((command, args))
        if command in self.fail:
            raise self.fail[command]
        if self.on_command is not None:
            self.on_command(command, args)

    def names(self) -> list[str]:
        """The names of the commands received so far, in order."""
        return [name for name, _ in self.commands]

    async def answer(self, channel_id: str) -> None:
        self._do("answer", channel_id=channel_id)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self._do("hangup", channel_id=channel_id, reason=reason)

    async def play(
        self, channel_id: str, media: Sequence[str], playback_id: str, language: str | None = None
    ) -> None:
        self._do("play", channel_id=channel_id, media=list(media), playback_id=playback_id,
                 language=language)

    async def stop_playback(self, playback_id: str) -> None:
        self._do("stop_playback", playback_id=playback_id)

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
        self._do("record", channel_id=channel_id, name=name, fmt=fmt,
                 max_duration_s=max_duration_s, max_silence_s=max_silence_s, beep=beep,
                 terminate_on=terminate_on)

    async def stop_recording(self, name: str) -> None:
        self._do("stop_recording", name=name)

    async def start_call_recording(self, channel_id: str, file: str, *, stereo: bool) -> None:
        self._do("start_call_recording", channel_id=channel_id, file=file, stereo=stereo)

    async def stop_call_recording(self, channel_id: str) -> None:
        self._do("stop_call_recording", channel_id=channel_id)

    async def mute_call_recording(self, channel_id: str, muted: bool) -> None:
        self._do("mute_call_recording", channel_id=channel_id, muted=muted)

    async def mute_recording(self, name: str) -> None:
        self._do("mute_recording", name=name)

    async def unmute_recording(self, name: str) -> None:
        self._do("unmute_recording", name=name)

    async def continue_in_dialplan(
        self, channel_id: str, context: str | None = None, extension: str | None = None,
        priority: int | None = None,
    ) -> None:
        self._do("continue_in_dialplan", channel_id=channel_id, context=context,
                 extension=extension, priority=priority)

    async def create_channel(
        self,
        endpoint: str,
        channel_id: str,
        app_args: Sequence[str],
        *,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        self._do("create_channel", endpoint=endpoint, channel_id=channel_id,
                 app_args=list(app_args), caller_id=caller_id, variables=dict(variables or {}))

    async def dial(self, channel_id: str, timeout_s: int, caller_id: str | None = None) -> None:
        self._do("dial", channel_id=channel_id, timeout_s=timeout_s, caller_id=caller_id)

    async def ring(self, channel_id: str) -> None:
        self._do("ring", channel_id=channel_id)

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        self._do("start_moh", channel_id=channel_id, moh_class=moh_class)

    async def stop_moh(self, channel_id: str) -> None:
        self._do("stop_moh", channel_id=channel_id)

    async def start_silence(self, channel_id: str) -> None:
        self._do("start_silence", channel_id=channel_id)

    async def stop_silence(self, channel_id: str) -> None:
        self._do("stop_silence", channel_id=channel_id)

    async def create_bridge(self, bridge_id: str, kind: str = "mixing") -> None:
        self._do("create_bridge", bridge_id=bridge_id, kind=kind)
        self.bridges[bridge_id] = []

    async def add_to_bridge(self, bridge_id: str, channel_id: str, *more: str) -> None:
        """One command, like the one ARI request: ``channel_ids`` lists every channel."""
        self._do("add_to_bridge", bridge_id=bridge_id, channel_ids=[channel_id, *more])
        if bridge_id not in self.bridges:
            raise NotFound(404, f"bridge {bridge_id} not found")
        self.bridges[bridge_id].extend((channel_id, *more))

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None:
        self._do("remove_from_bridge", bridge_id=bridge_id, channel_id=channel_id)
        members = self.bridges.get(bridge_id, [])
        if channel_id in members:
            members.remove(channel_id)

    async def destroy_bridge(self, bridge_id: str) -> None:
        self._do("destroy_bridge", bridge_id=bridge_id)
        self.bridges.pop(bridge_id, None)

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        self._do("get_variable", channel_id=channel_id, name=name)
        return self.variables.get((channel_id, name))

    async def pbx_started(self) -> datetime | None:
        """:attr:`started` (``None``: unknown)."""
        return self.started

    async def pbx_log_dir(self) -> str:
        """:attr:`log_dir`."""
        return self.log_dir

    async def list_channels(self) -> list[ChannelInfo]:
        self._do("list_channels")
        return list(self.channels.values())

    async def list_bridges(self) -> list[BridgeInfo]:
        self._do("list_bridges")
        return [BridgeInfo(b, tuple(m)) for b, m in self.bridges.items()]
