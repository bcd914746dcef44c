"""Routes each telephony event to the inbox of the call task that owns its channel."""

from __future__ import annotations

import asyncio

from callcontrol.telephony import TelephonyEvent

Inbox = asyncio.Queue[TelephonyEvent]


async def receive(inbox: Inbox, timeout: float | None) -> TelephonyEvent | None:
    """The next event of ``inbox``, or ``None`` after ``timeout`` seconds (``None``: no limit).

    Not ``asyncio.wait_for``: on Python 3.11 it returns the event and swallows a cancellation
    that arrives together with it, so a cancelled call task would go on (and, waiting for its
    next event without a deadline, never end). ``asyncio.timeout`` always lets it through.
    """
    try:
        async with asyncio.timeout(timeout):
            return await inbox.get()
    except TimeoutError:
        return None


class EventRouter:
    """A map from channel id to the inbox of the call that owns the channel.

    One call owns a channel at a time; claiming a channel someone else owns moves it.
    """

    def __init__(self) -> None:
        self._owners: dict[str, Inbox] = {}

    def claim(self, channel_id: str, inbox: Inbox) -> None:
        """Route the events of ``channel_id`` to ``inbox`` from now on."""
        self._owners[channel_id] = inbox

    def release(self, channel_id: str, inbox: Inbox | None = None) -> None:
        """Stop routing ``channel_id`` (only if ``inbox`` still owns it, when given)."""
        if inbox is None or self._owners.get(channel_id) is inbox:
            self._owners.pop(channel_id, None)

    def owns(self, channel_id: str) -> bool:
        """Whether some call owns ``channel_id``."""
        return channel_id in self._owners

    def post(self, event: TelephonyEvent) -> bool:
        """Deliver ``event`` to its channel's owner; ``False`` when no call owns the channel."""
        inbox = self._owners.get(event.channel_id)
        if inbox is None:
            return False
        inbox.put_nowait(event)
        return True

    def owned_channels(self) -> list[str]:
        """The channel ids currently owned by some call."""
        return list(self._owners)
