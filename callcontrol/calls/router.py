"""Routes each message to the inbox of the call task that owns its channel.

    PBX event (from the telephony port) --deliver--> owner's inbox, else ``unowned(event)``
                                                     (the call manager: a new channel)
    ACD message, abort                   --post-->    owner's inbox (dropped when none)
"""

from __future__ import annotations

from collections.abc import Callable

from callcontrol.calls.inbox import Inbox, InboxMessage
from callcontrol.telephony import TelephonyEvent


class EventRouter:
    """A map from channel id to the inbox of the call that owns the channel.

    One call owns a channel at a time; claiming a channel someone else owns moves it. Events of
    channels no call owns go to :attr:`unowned` (set by the call manager).
    """

    def __init__(self) -> None:
        self._owners: dict[str, Inbox] = {}
        self.unowned: Callable[[TelephonyEvent], None] = lambda event: None

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

    def post(self, message: InboxMessage) -> bool:
        """Deliver ``message`` to its channel's owner; ``False`` when no call owns the channel."""
        inbox = self._owners.get(message.channel_id)
        if inbox is None:
            return False
        inbox.put_nowait(message)
        return True

    def deliver(self, event: TelephonyEvent) -> None:
        """A PBX event: to its channel's owner, else to :attr:`unowned`."""
        inbox = self._owners.get(event.channel_id)
        if inbox is None:
            self.unowned(event)
        else:
            inbox.put_nowait(event)

    def owned_channels(self) -> list[str]:
        """The channel ids currently owned by some call."""
        return list(self._owners)
