"""The live flows: loaded and checked at start, hot-reloaded when their files change.

The registry holds one immutable mapping flow name -> :class:`LoadedFlow`. A new call takes it
with :meth:`FlowRegistry.snapshot` and keeps it to its end (``goto_flow`` included), so a
reload never changes a running call. A changed file is loaded and checked
(:func:`callcontrol.flows.check.check_paths`); without errors its new version replaces the old
one by swapping the mapping (one assignment: atomic for every reader); with errors it is
refused, the findings are kept for :meth:`FlowRegistry.status`, and the old version stays live.
A deleted file takes its flow out of new calls.

:meth:`FlowRegistry.watch` follows the folder with ``watchfiles.awatch``; editors that save by
writing a temporary file and renaming it produce a delete/add pair, handled by looking at
whether the file exists once the batch of changes settles. Files are loaded and checked in a
worker thread. Whatever a file holds, it is live or refused with findings (the loader and the
checker turn every problem into a finding); an unexpected error is logged and the watch goes
on, so the next good edit of any file is still taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from watchfiles import awatch

from callcontrol.errors import FlowError
from callcontrol.flows.check import CheckContext, check_paths, flow_files
from callcontrol.flows.loader import LoadedFlow, load_flow
from callcontrol.logging import get_logger

FLOW_SUFFIXES = (".yaml", ".yml")

WATCH_RETRY = 1.0
"""Seconds before watching starts again after the watcher itself failed."""


def load_folder(folder: Path) -> tuple[dict[str, LoadedFlow], dict[str, list[str]]]:
    """Load every flow file of ``folder`` without the static checks (for tools): the loaded
    flows by name, and the findings of the files that could not be loaded, by path."""
    flows: dict[str, LoadedFlow] = {}
    refused: dict[str, list[str]] = {}
    for path in flow_files([folder]):
        try:
            loaded = load_flow(path)
        except FlowError as exc:
            refused[str(path)] = list(exc.findings)
        else:
            flows[loaded.flow.flow] = loaded
    return flows, refused


@dataclass(frozen=True)
class _Verdict:
    """What loading and checking one file gave: the flow (None when refused) and findings."""

    loaded: LoadedFlow | None
    errors: list[str]
    warnings: list[str]


@dataclass(frozen=True)
class Refusal:
    """A file whose latest content was refused, and why."""

    path: str
    findings: list[str]
    at: datetime
    live_version: str | None


@dataclass
class FlowRegistry:
    """The flows of one folder (see the module docstring)."""

    folder: Path
    context: CheckContext = field(default_factory=CheckContext)
    _live: Mapping[str, LoadedFlow] = field(default_factory=lambda: MappingProxyType({}))
    _refused: dict[str, Refusal] = field(default_factory=dict)
    _loaded_at: dict[str, datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._log = get_logger("callcontrol.flows")
        self._changed = asyncio.Event()

    async def next_change(self) -> None:
        """Wait until the registry handles its next batch of changed files (applied or
        refused)."""
        await self._changed.wait()

    def snapshot(self) -> Mapping[str, LoadedFlow]:
        """The live flows now, as an immutable mapping a call keeps until it ends."""
        return self._live

    def load_all(self) -> None:
        """Load and check every flow file of the folder (at start)."""
        for path in flow_files([self.folder]):
            self.reload(path)
        self._log.info("flows_loaded", live=sorted(self._live), refused=sorted(self._refused))

    def reload(self, path: Path) -> bool:
        """Load and check one file; swap its flow in when it has no error. True if live."""
        return self._apply(path, self._judge(path))

    def _judge(self, path: Path) -> _Verdict:
        """Load and check ``path`` (touches no state of the registry: runs in a thread)."""
        try:
            errors: list[str] = []
            warnings: list[str] = []
            for finding in check_paths([path], self.context):
                (errors if finding.severity == "error" else warnings).append(str(finding))
            if errors:
                return _Verdict(None, errors, warnings)
            return _Verdict(load_flow(path), [], warnings)
        except FlowError as exc:  # changed again between the check and the load
            return _Verdict(None, list(exc.findings), [])
        except Exception as exc:  # a bug of ours: refuse the file, keep the daemon watching
            self._log.exception("flow_check_failed", path=str(path))
            return _Verdict(None, [f"{path}:1:1: error: cannot check flow: {exc!r}"], [])

    def _apply(self, path: Path, verdict: _Verdict) -> bool:
        name = path.stem
        loaded = verdict.loaded
        if loaded is None:
            old = self._live.get(name)
            self._refused[str(path)] = Refusal(
                str(path), verdict.errors, datetime.now(UTC), old.version if old else None
            )
            self._log.warning(
                "flow_refused",
                path=str(path),
                findings=verdict.errors,
                live_version=old.version if old else None,
            )
            return False
        self._refused.pop(str(path), None)
        old = self._live.get(name)
        if old is not None and old.version == loaded.version:
            return True
        self._swap({**self._live, name: loaded})
        self._loaded_at[name] = datetime.now(UTC)
        self._log.info(
            "flow_live",
            flow=name,
            version=loaded.version,
            previous=old.version if old else None,
            warnings=verdict.warnings,
        )
        return True

    def remove(self, path: Path) -> None:
        """The file is gone: new calls no longer get its flow."""
        self._refused.pop(str(path), None)
        name = path.stem
        current = self._live.get(name)
        if current is not None and current.path == path:
            self._swap({k: v for k, v in self._live.items() if k != name})
            self._log.info("flow_removed", flow=name, version=current.version)

    def _swap(self, flows: dict[str, LoadedFlow]) -> None:
        self._live = MappingProxyType(flows)

    def apply_changes(self, paths: Iterable[Path]) -> None:
        """Handle a batch of changed paths: reload those that exist, remove the others."""
        for path in self._flow_paths(paths):
            if path.is_file():
                self.reload(path)
            else:
                self.remove(path)
        self._signal_change()

    async def apply_changes_off_loop(self, paths: Iterable[Path]) -> None:
        """:meth:`apply_changes`, loading and checking in a worker thread so that a large
        file never holds up the event loop (and the calls it runs)."""
        for path in self._flow_paths(paths):
            if path.is_file():
                self._apply(path, await asyncio.to_thread(self._judge, path))
            else:
                self.remove(path)
        self._signal_change()

    def _flow_paths(self, paths: Iterable[Path]) -> list[Path]:
        return [
            path
            for path in sorted(set(paths))
            if path.suffix in FLOW_SUFFIXES and path.parent == self.folder
        ]

    def _signal_change(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        """Follow the folder until ``stop`` is set (or the task is cancelled).

        Nothing ends the watch but those two: an error handling a batch is logged and the
        next batch is handled; an error of the watcher itself (the folder removed, say) is
        logged and watching starts again after :data:`WATCH_RETRY` seconds."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                async for changes in awatch(
                    self.folder.resolve(), stop_event=stop, recursive=False, debounce=200, step=50
                ):
                    try:
                        await self.apply_changes_off_loop(
                            self.folder / Path(changed).name for _, changed in changes
                        )
                    except Exception:
                        self._log.exception("flow_reload_failed")
            except Exception:
                self._log.exception("flow_watch_failed", folder=str(self.folder))
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_RETRY)

    def status(self) -> dict[str, Any]:
        """For ``/health`` and ``GET /api/flows``: live flows with versions, refused files."""
        return {
            "live": {
                name: {
                    "version": loaded.version,
                    "path": str(loaded.path),
                    "loaded_at": self._loaded_at[name].isoformat()
                    if name in self._loaded_at
                    else None,
                }
                for name, loaded in sorted(self._live.items())
            },
            "refused": {
                path: {
                    "findings": refusal.findings,
                    "at": refusal.at.isoformat(),
                    "live_version": refusal.live_version,
                }
                for path, refusal in sorted(self._refused.items())
            },
        }
