"""Test-wide guards: any exception that reached an event loop's handler fails the test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _fail_on_loop_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    errors: list[dict[str, Any]] = []
    original = asyncio.BaseEventLoop.call_exception_handler

    def record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(context)
        original(loop, context)  # type: ignore[arg-type]

    asyncio.BaseEventLoop.call_exception_handler = record  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        asyncio.BaseEventLoop.call_exception_handler = original  # type: ignore[method-assign]
    if errors:
        pytest.fail(f"exceptions reached the event loop's handler: {errors!r}")
