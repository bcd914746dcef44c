"""Flow registry: load at start, hot reload (broken edits refused), snapshots kept by calls."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from callcontrol.flows.engine import FlowEngine, FlowServices
from callcontrol.flows.expressions import Sandbox
from callcontrol.flows.prompts import PromptResolver
from callcontrol.flows.registry import FlowRegistry
from callcontrol.flows.simulate import FixtureHttp, SimulatedCall

ENTRY = """flow: entry
start: go
steps:
  go:
    goto_flow: {flow: target}
"""
TARGET = """flow: target
start: mark
steps:
  mark:
    set: {version: "%s"}
    next: end
  end:
    hangup: {}
"""
BROKEN = """flow: target
start: mark
steps:
  mark:
    set: {version: "broken"}
    next: nowhere
"""


def write(folder: Path, name: str, text: str) -> None:
    """Save like an editor: write a temporary file, then rename it over the flow."""
    tmp = folder / f".{name}.swp"
    tmp.write_text(text)
    os.replace(tmp, folder / f"{name}.yaml")


async def run_on(snapshot: object, tmp_path: Path) -> str:
    call = SimulatedCall("", auto=False)
    services = FlowServices(Sandbox(), PromptResolver(tmp_path), FixtureHttp())
    result = await FlowEngine(call, snapshot, services).run("entry")  # type: ignore[arg-type]
    return str(result.variables["version"])


def make_registry(tmp_path: Path) -> FlowRegistry:
    write(tmp_path, "entry", ENTRY)
    write(tmp_path, "target", TARGET % "one")
    registry = FlowRegistry(tmp_path)
    registry.load_all()
    return registry


async def test_broken_edit_is_refused_and_good_edit_swapped(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    before = registry.snapshot()
    assert sorted(before) == ["entry", "target"]
    first_version = before["target"].version

    write(tmp_path, "target", BROKEN)
    registry.apply_changes([tmp_path / "target.yaml"])
    assert registry.snapshot()["target"].version == first_version
    refused = registry.status()["refused"][str(tmp_path / "target.yaml")]
    assert refused["live_version"] == first_version
    assert any("nowhere" in f and "target.yaml:" in f for f in refused["findings"])
    assert await run_on(registry.snapshot(), tmp_path) == "one"

    write(tmp_path, "target", TARGET % "two")
    registry.apply_changes([tmp_path / "target.yaml"])
    assert registry.status()["refused"] == {}
    assert registry.status()["live"]["target"]["version"] != first_version
    assert await run_on(registry.snapshot(), tmp_path) == "two"
    # a call that started before the edit keeps its versions, goto_flow included
    assert await run_on(before, tmp_path) == "one"


async def test_refused_at_start_and_deleted_files(tmp_path: Path) -> None:
    write(tmp_path, "entry", ENTRY)
    write(tmp_path, "target", BROKEN)
    registry = FlowRegistry(tmp_path)
    registry.load_all()
    assert "target" not in registry.snapshot()
    assert str(tmp_path / "target.yaml") in registry.status()["refused"]
    (tmp_path / "entry.yaml").unlink()
    registry.apply_changes([tmp_path / "entry.yaml"])
    assert registry.snapshot() == {}


async def test_watch_reloads_on_rename_save(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    old = registry.snapshot()["target"].version
    stop = asyncio.Event()
    watcher = asyncio.create_task(registry.watch(stop))
    try:
        async with asyncio.timeout(20):
            while registry.snapshot()["target"].version == old:
                change = asyncio.ensure_future(registry.next_change())
                write(tmp_path, "target", TARGET % "watched")
                # the watcher may start after a first write: write again if nothing came
                await asyncio.wait([change], timeout=1.0)
                change.cancel()
        assert await run_on(registry.snapshot(), tmp_path) == "watched"
        change = asyncio.ensure_future(registry.next_change())
        write(tmp_path, "target", BROKEN)
        await asyncio.wait_for(change, 20)
        assert registry.status()["refused"]
        assert await run_on(registry.snapshot(), tmp_path) == "watched"
    finally:
        stop.set()
        await asyncio.wait_for(watcher, 10)


async def wait_for_change(
    registry: FlowRegistry, done: Callable[[], bool], act: Callable[[], None]
) -> None:
    """Do ``act`` until ``done()`` holds after a change the watcher handled (the watcher may
    start after a first write: act again if no change came)."""
    async with asyncio.timeout(20):
        while not done():
            change = asyncio.ensure_future(registry.next_change())
            act()
            await asyncio.wait([change], timeout=1.0)
            change.cancel()


HOSTILE = {
    "stamp.yaml": b"x: 2024-13-45\n",
    "nul.yaml": b"flow: nul\x00\n",
    "deep.yaml": b"[" * 3000,
    "bomb.yaml": b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    + b"".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n".encode()
        for p, n in zip("abcdef", "bcdefg", strict=True)
    ),
}


async def test_watch_survives_hostile_files_and_takes_the_next_good_edit(
    tmp_path: Path,
) -> None:
    registry = make_registry(tmp_path)
    stop = asyncio.Event()
    watcher = asyncio.create_task(registry.watch(stop))

    def refused() -> set[str]:
        return {Path(p).name for p in registry.status()["refused"]}

    def drop_hostile() -> None:
        for name, data in HOSTILE.items():
            (tmp_path / name).write_bytes(data)
        write(tmp_path, "target", TARGET.replace("hangup: {}", "hangup: {}\nsince: 2024-13-45"))

    try:
        await wait_for_change(registry, lambda: refused() >= {*HOSTILE, "target.yaml"},
                              drop_hostile)
        assert await run_on(registry.snapshot(), tmp_path) == "one"  # last good version
        findings = registry.status()["refused"][str(tmp_path / "stamp.yaml")]["findings"]
        assert findings == [
            f"{tmp_path}/stamp.yaml:1:4: error: invalid value '2024-13-45' (month must be in "
            "1..12); quote it to keep it as text"
        ]
        await wait_for_change(registry, lambda: "target.yaml" not in refused(),
                              lambda: write(tmp_path, "target", TARGET % "two"))
        assert await run_on(registry.snapshot(), tmp_path) == "two"
        assert refused() == set(HOSTILE)
        assert not watcher.done()
    finally:
        stop.set()
        await asyncio.wait_for(watcher, 10)


async def test_watch_logs_an_unexpected_error_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = make_registry(tmp_path)
    real = registry.apply_changes_off_loop
    failures = []

    async def fail_once(paths: Iterable[Path]) -> None:
        if not failures:
            failures.append(1)
            raise RuntimeError("boom")
        await real(paths)

    monkeypatch.setattr(registry, "apply_changes_off_loop", fail_once)
    stop = asyncio.Event()
    watcher = asyncio.create_task(registry.watch(stop))
    old = registry.snapshot()["target"].version
    try:
        await wait_for_change(registry, lambda: registry.snapshot()["target"].version != old,
                              lambda: write(tmp_path, "target", TARGET % "three"))
        assert failures == [1]
        assert await run_on(registry.snapshot(), tmp_path) == "three"
        assert not watcher.done()
    finally:
        stop.set()
        await asyncio.wait_for(watcher, 10)
