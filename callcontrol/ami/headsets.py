"""Headset reachability over AMI: the adapter between AMI contact status and the domain.

:class:`AmiHeadsets` implements :class:`callcontrol.telephony.HeadsetStatus` (one
``PJSIPShowContacts``) and turns every ``ContactStatus`` event into a
:class:`~callcontrol.telephony.HeadsetReachability` for one sink (the ACD): the domain never sees
an AMI event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from callcontrol.ami.client import AmiClient
from callcontrol.ami.protocol import AmiEvent, ContactStatus
from callcontrol.telephony import HeadsetReachability

UNREACHABLE_CONTACT = frozenset({"Unreachable", "Removed"})
"""AMI contact statuses that mean the headset cannot ring."""


class AmiHeadsets:
    """Headset reachability from an :class:`AmiClient`."""

    def __init__(self, client: AmiClient) -> None:
        self._client = client

    async def headset_reachability(self) -> dict[str, bool]:
        """Endpoint -> reachable, for every endpoint with a contact."""
        statuses = await self._client.contact_status()
        return {endpoint: status not in UNREACHABLE_CONTACT
                for endpoint, status in statuses.items()}

    def on_change(self, sink: Callable[[HeadsetReachability], Awaitable[None]]) -> None:
        """Await ``sink`` with every contact change, translated."""

        async def deliver(event: AmiEvent) -> None:
            if isinstance(event, ContactStatus):
                await sink(HeadsetReachability(endpoint=event.endpoint or event.aor,
                                               reachable=event.status not in UNREACHABLE_CONTACT))

        self._client.on_event(deliver)
