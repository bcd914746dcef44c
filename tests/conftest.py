"""Test-wide guards: any exception that reached an event loop's handler fails the test, and so
does a skip (a test that does not run proves nothing: what it needs is installed by
``make install``, so a missing dependency is a failure to see, not a skip to overlook)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest


def _fail_if_skipped(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, which fails here: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _fail_if_skipped(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_if_skipped(outcome.get_result())  # type: ignore[attr-defined]


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
