"""Waiting in tests for a state that can only be observed by asking (database, API, a flag).

Both helpers poll, bounded by a timeout, and fail the test with an :class:`AssertionError`
naming what was awaited::

    row = await eventually(lambda: find_row(engine, call_id), 10, "the call's final row")
    await wait_until(lambda: writer.link.up, 10)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0,
                     what: str = "condition", interval: float = 0.1) -> T:
    """Await ``check()`` every ``interval`` s until it returns something truthy and return
    that; fail after ``timeout`` seconds (the message shows the last answer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: T | None = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")


async def wait_until(condition: Callable[[], bool], seconds: float, step: float = 0.01) -> None:
    """Wait until ``condition()`` holds, checking every ``step`` s; fail after ``seconds``."""
    for _ in range(int(seconds / step)):
        if condition():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {seconds} s")
