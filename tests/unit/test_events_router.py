"""Receiving from a call's inbox: a deadline, and a cancel that is never lost."""

from __future__ import annotations

import asyncio

import pytest

from callcontrol.events_router import Inbox, receive
from callcontrol.telephony import ChannelHungUp


async def test_receive_returns_the_event_or_none_after_the_timeout() -> None:
    inbox: Inbox = asyncio.Queue()
    assert await receive(inbox, 0.01) is None
    event = ChannelHungUp(channel_id="c1")
    inbox.put_nowait(event)
    assert await receive(inbox, None) is event


async def test_a_cancel_arriving_with_an_event_ends_the_waiting_task() -> None:
    """``asyncio.wait_for`` (Python 3.11) returned the event and dropped this cancel: the
    cancelled call task went on and hung the ACD unit tests' teardown."""
    inbox: Inbox = asyncio.Queue()
    waiting = asyncio.create_task(receive(inbox, 5.0))
    await asyncio.sleep(0)  # the task now waits on the empty inbox
    inbox.put_nowait(ChannelHungUp(channel_id="c1"))
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert inbox.qsize() == 1  # the event stays for whoever reads next
