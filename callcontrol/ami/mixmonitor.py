"""Call recording over AMI: :class:`AmiMixMonitor` implements the port's
:class:`~callcontrol.telephony.CallRecorderPort` with ``MixMonitor``, ``StopMixMonitor`` and
``MixMonitorMute``.

ARI has no whole-call recorder: its channel recording takes what the channel sends only, and a
bridge recording mixes everyone into one channel. MixMonitor on the caller's channel with the
``D`` option interleaves what the caller sends (left) and what the caller hears (right: the
agents, the prompts) into one stereo raw stream; ``MixMonitorMute`` on ``both`` writes silence
for the muted span. AMI names the channel by its unique id, which is ARI's channel id.
"""

from __future__ import annotations

from callcontrol.ami.client import AmiClient


class AmiMixMonitor:
    """Whole-call recordings through an :class:`AmiClient`."""

    def __init__(self, client: AmiClient) -> None:
        self._client = client

    async def start_call_recording(self, channel_id: str, file: str, *, stereo: bool) -> None:
        """``MixMonitor`` on the channel into ``file`` (``D``: interleaved stereo, raw)."""
        action = {"Action": "MixMonitor", "Channel": channel_id, "File": file}
        if stereo:
            action["Options"] = "D"
        await self._client.action(action)

    async def stop_call_recording(self, channel_id: str) -> None:
        """``StopMixMonitor`` on the channel: Asterisk closes the file."""
        await self._client.action({"Action": "StopMixMonitor", "Channel": channel_id})

    async def mute_call_recording(self, channel_id: str, muted: bool) -> None:
        """``MixMonitorMute`` both directions on (silence written) or off."""
        await self._client.action({"Action": "MixMonitorMute", "Channel": channel_id,
                                   "Direction": "both", "State": "1" if muted else "0"})
