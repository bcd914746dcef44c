"""What a call's inbox carries: one typed union of the three kinds of message a call task reads.

    InboxMessage = TelephonyEvent   what the PBX reported about one of the call's channels
                 | AcdMessage       what the ACD asks of the call (an agent offered, a hold...)
                 | AbortCall        the daemon ends the call (shutdown, PBX restart)

Each is addressed to a channel (``channel_id``); :class:`~callcontrol.calls.router.EventRouter`
puts it into the inbox of the call owning that channel. :meth:`CallContext.next_event` consumes
aborts itself and hands the other two to the flow engine and the ACD.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from callcontrol.clock import utcnow
from callcontrol.store.records import Outcome
from callcontrol.telephony import TelephonyEvent


@dataclass(frozen=True, kw_only=True)
class AcdMessage:
    """Base of what the ACD posts to a call (defined in :mod:`callcontrol.acd.events`)."""

    channel_id: str
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, kw_only=True)
class AbortCall:
    """Make the call end with ``outcome`` at its next wait (and hand it to the dialplan first
    when ``hand_to_dialplan``)."""

    channel_id: str
    outcome: Outcome
    reason: str
    hand_to_dialplan: bool = False
    at: datetime = field(default_factory=utcnow)


InboxEvent = TelephonyEvent | AcdMessage
"""What a call's task sees: :meth:`CallContext.next_event` returns these."""

InboxMessage = InboxEvent | AbortCall
"""Everything an inbox may hold."""

Inbox = asyncio.Queue[InboxMessage]

async def receive(inbox: Inbox, timeout: float | None) -> InboxMessage | None:
    """The next message of ``inbox``, or ``None`` after ``timeout`` seconds (``None``: no limit).

    Not ``asyncio.wait_for``: on Python 3.11 it returns the event and swallows a cancellation
    that arrives together with it, so a cancelled call task would go on (and, waiting for its
    next event without a deadline, never end). ``asyncio.timeout`` always lets it through.
    """
    try:
        async with asyncio.timeout(timeout):
            return await inbox.get()
    except TimeoutError:
        return None


def inbox_reader(inbox: Inbox) -> Callable[[float | None], Awaitable[InboxMessage | None]]:
    """``read(timeout)``: :func:`receive` on ``inbox`` (for :class:`Deadline.next`)."""
    return functools.partial(receive, inbox)
