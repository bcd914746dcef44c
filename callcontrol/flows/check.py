"""Static checks of flow files (``callcontrol flows check``).

Beyond what the loader refuses (syntax, types, unknown fields, exits a kind lacks, missing
exits), the checker follows every step's exits: unknown targets and start step, unreachable
steps (warning), steps from which no end can be reached, loops that never wait for the caller,
unknown queues, schedules and flows, templates and expressions the sandbox would refuse
(:mod:`callcontrol.flows.exprcheck`), and prompt files that are missing or in a format
Asterisk cannot play. It also warns about likely mistakes: an ``http``
step with no ``error`` exit in a flow without ``on_error`` (a failed request would end the
call), and a step named ``repeat`` (in menu options that word replays the prompt, so no option
can lead to such a step). Each finding reads
``PATH:LINE:COL: error|warning: message`` (1-based).

An *end* is a step with no exits (``hangup``, ``goto_flow``) or a ``queue`` without ``after``
(the call ends when the agent hangs up).
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import BaseModel

from callcontrol.errors import FlowError
from callcontrol.flows.exprcheck import expression_problems
from callcontrol.flows.loader import LoadedFlow, load_flow
from callcontrol.flows.model import (
    BranchStep,
    DialStep,
    GotoFlowStep,
    HangupStep,
    HoursStep,
    HttpStep,
    Prompt,
    QueueStep,
    Schedule,
    StepBase,
    did_you_mean,
)
from callcontrol.flows.prompts import PromptError, confined_file
from callcontrol.yamlpos import Loc

Severity = Literal["error", "warning"]

NON_WAITING_KINDS = frozenset({"set", "branch", "http", "split", "hours"})
"""Step kinds that never wait for the caller: a loop made only of these spins forever."""

ON_HANGUP_KINDS = frozenset({"set", "http", "branch", "hangup"})
"""Step kinds allowed after the caller hung up (``hangup`` only to end the chain)."""

RAW_AUDIO_EXTENSIONS = frozenset({".ulaw", ".ul", ".alaw", ".al", ".gsm", ".g722"})
"""Headerless formats Asterisk plays, accepted by extension."""


@dataclass(frozen=True, order=True)
class Finding:
    """One problem found in a flow file."""

    path: str
    line: int
    col: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.severity}: {self.message}"


@dataclass(frozen=True)
class CheckContext:
    """What flows are checked against: the daemon's queues and shared schedules, and the
    Asterisk stock sounds per language (see :func:`load_stock_sounds`).

    ``known_queues=None`` skips the queue check (no config at hand).
    """

    known_queues: Collection[str] | None = None
    shared_schedules: Mapping[str, Schedule] = field(default_factory=dict)
    stock_sounds: Mapping[str, Collection[str]] = field(default_factory=dict)
    recording_policies: Collection[str] | None = None
    """Policy names a ``queue``/``dial`` step's ``recording`` may use (None: not checked)."""


def _inside_root(path: Path, root: Path | None) -> Path:
    """Follow symlinks of ``path`` the way a process chrooted at ``root`` would see them."""
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = Path(os.readlink(path))
        if target.is_absolute():
            path = (root / target.relative_to("/")) if root is not None else target
        else:
            path = path.parent / target
    return path


def load_stock_sounds(sounds_dir: Path, root: Path | None = None) -> dict[str, set[str]]:
    """Asterisk's installed sounds (``SOUNDS/<lang>/[sub/]NAME.ext``) as language -> names
    (``"goodbye"``, ``"digits/1"``). ``root``: the Asterisk chroot, whose absolute symlinks
    (Debian's ``sounds/en -> /etc/alternatives/...``) resolve inside it."""
    stock: dict[str, set[str]] = {}
    if not sounds_dir.is_dir():
        return stock
    for entry in sorted(sounds_dir.iterdir()):
        lang_dir = _inside_root(entry, root)
        if not lang_dir.is_dir():
            continue
        lang_dir = lang_dir.resolve() if root is None else _inside_root(lang_dir, root)
        stock[entry.name] = {
            str(f.relative_to(lang_dir).with_suffix("")) for f in lang_dir.rglob("*") if f.is_file()
        }
    return stock


def flow_files(paths: list[Path]) -> list[Path]:
    """The flow files named by ``paths``: files as given, folders' ``*.yaml``/``*.yml``."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        else:
            out.append(path)
    return out


def check_paths(paths: list[Path], context: CheckContext | None = None) -> list[Finding]:
    """Load and check every flow file under ``paths``; return the findings sorted by file and
    position. ``goto_flow`` targets resolve among the checked flows and their folder."""
    context = context or CheckContext()
    findings: list[Finding] = []
    loaded: dict[Path, LoadedFlow] = {}
    for path in flow_files(paths):
        try:
            loaded[path] = load_flow(path)
        except FlowError as exc:
            findings.extend(_load_finding(str(path), text) for text in exc.findings)
    siblings = _Siblings(loaded)
    for path, flow in loaded.items():
        try:
            findings.extend(_FlowChecker(flow, context, siblings).run())
        except Exception as exc:  # a bug of ours: still a finding, never a traceback
            findings.append(Finding(str(path), 1, 1, "error", f"cannot check flow: {exc!r}"))
    return sorted(set(findings))


def check_main(
    paths: list[Path], context: CheckContext | None = None, out: TextIO | None = None
) -> int:
    """Print every finding (one per line) to ``out``; return 1 when any is an error."""
    out = out or sys.stdout
    findings = check_paths(paths, context)
    for finding in findings:
        print(finding, file=out)
    return 1 if any(f.severity == "error" for f in findings) else 0


def _load_finding(path: str, text: str) -> Finding:
    rest = text.removeprefix(f"{path}:")
    line, col, message = rest.split(":", 2)
    return Finding(path, int(line), int(col), "error", message.strip())


class _Siblings:
    """The other flows a ``goto_flow`` may name: those checked, else files beside them."""

    def __init__(self, loaded: Mapping[Path, LoadedFlow]) -> None:
        self._by_name = {lf.flow.flow: lf for lf in loaded.values()}
        self._missing: set[str] = set()

    def steps_of(self, name: str, folder: Path) -> Collection[str] | None:
        """The step names of flow ``name``; None when no such flow loads."""
        if name not in self._by_name and name not in self._missing:
            try:
                self._by_name[name] = load_flow(folder / f"{name}.yaml")
            except FlowError:
                self._missing.add(name)
        found = self._by_name.get(name)
        return found.flow.steps.keys() if found else None


class _FlowChecker:
    def __init__(self, loaded: LoadedFlow, context: CheckContext, siblings: _Siblings) -> None:
        self.loaded = loaded
        self.flow = loaded.flow
        self.context = context
        self.siblings = siblings
        self.findings: list[Finding] = []

    def run(self) -> list[Finding]:
        self._references()
        self._reachability()
        self._ends()
        self._busy_loops()
        self._on_hangup()
        self._schedules()
        self._queues()
        self._recording_policies()
        self._templates()
        self._prompts()
        self._unguarded_http()
        self._step_named_repeat()
        return self.findings

    def _add(self, severity: Severity, loc: Loc, message: str, *, value: bool = True) -> None:
        line, col = self.loaded.position(loc, value=value)
        self.findings.append(Finding(str(self.loaded.path), line, col, severity, message))

    def _graph(self) -> dict[str, list[str]]:
        steps = self.flow.steps
        return {
            name: [r.target for r in step.exit_refs() if r.target in steps]
            for name, step in steps.items()
        }

    # -- references -----------------------------------------------------------------------

    def _unknown_step(self, loc: Loc, target: str, what: str, *, value: bool = True) -> None:
        if target not in self.flow.steps:
            hint = did_you_mean(target, list(self.flow.steps))
            self._add("error", loc, f"{what} names unknown step {target!r}{hint}", value=value)

    def _references(self) -> None:
        flow = self.flow
        self._unknown_step(("start",), flow.start, "start")
        for key in ("on_error", "on_hangup"):
            target = getattr(flow, key)
            if target is not None:
                self._unknown_step((key,), target, key)
        for key, target in flow.global_keys.items():
            self._unknown_step(("global_keys", key), target, f"global key {key!r}")
        for name, step in flow.steps.items():
            for ref in step.exit_refs():
                self._unknown_step(
                    ("steps", name, *ref.loc),
                    ref.target,
                    f"exit {ref.name!r} of step {name!r}",
                    value=ref.loc[0] != "split",
                )
            if isinstance(step, GotoFlowStep):
                self._goto_flow(name, step)

    def _goto_flow(self, name: str, step: GotoFlowStep) -> None:
        spec = step.goto_flow
        if spec.flow == self.flow.flow:
            steps: Collection[str] | None = self.flow.steps.keys()
        else:
            steps = self.siblings.steps_of(spec.flow, self.loaded.path.parent)
        if steps is None:
            self._add("error", ("steps", name, "goto_flow", "flow"), f"unknown flow {spec.flow!r}")
        elif spec.step is not None and spec.step not in steps:
            hint = did_you_mean(spec.step, list(steps))
            self._add(
                "error",
                ("steps", name, "goto_flow", "step"),
                f"flow {spec.flow!r} has no step {spec.step!r}{hint}",
            )

    # -- graph ----------------------------------------------------------------------------

    def _roots(self) -> list[str]:
        flow = self.flow
        return [
            flow.start,
            *filter(None, (flow.on_error, flow.on_hangup)),
            *flow.global_keys.values(),
        ]

    def _reachability(self) -> None:
        graph = self._graph()
        seen = _reach([r for r in self._roots() if r in graph], graph)
        for name in self.flow.steps:
            if name not in seen:
                self._add(
                    "warning", ("steps", name), f"step {name!r} is never reached", value=False
                )

    def _ends(self) -> None:
        graph = self._graph()
        reverse: dict[str, list[str]] = {name: [] for name in graph}
        for name, targets in graph.items():
            for target in targets:
                reverse[target].append(name)
        steps = self.flow.steps
        # A step with an unknown target is already an error: don't also call it a dead end.
        ends = [
            name
            for name, step in steps.items()
            if _is_end(step) or any(r.target not in steps for r in step.exit_refs())
        ]
        can_end = _reach(ends, reverse)
        for name in self.flow.steps:
            if name not in can_end:
                self._add(
                    "error",
                    ("steps", name),
                    f"no end can be reached from step {name!r} "
                    "(an end is a hangup, a goto_flow or a queue without 'after')",
                    value=False,
                )

    def _busy_loops(self) -> None:
        busy = {n for n, s in self.flow.steps.items() if s.kind in NON_WAITING_KINDS}
        graph = {n: [t for t in targets if t in busy] for n, targets in self._graph().items()}
        order = list(self.flow.steps)
        for component in _strongly_connected({n: graph[n] for n in order if n in busy}):
            first = min(component, key=order.index)
            if len(component) > 1 or first in graph[first]:
                cycle = " -> ".join([*sorted(component, key=order.index), first])
                self._add(
                    "error",
                    ("steps", first),
                    f"loop that never waits for the caller: {cycle} "
                    "(add a play, menu or gather to it)",
                    value=False,
                )

    def _on_hangup(self) -> None:
        start = self.flow.on_hangup
        if start is None or start not in self.flow.steps:
            return
        for name in sorted(_reach([start], self._graph()), key=list(self.flow.steps).index):
            kind = self.flow.steps[name].kind
            if kind not in ON_HANGUP_KINDS:
                self._add(
                    "error",
                    ("steps", name, kind),
                    f"step {name!r} runs after the caller hung up (on_hangup): a {kind} step "
                    "cannot run there; use set, http or branch (and hangup to end)",
                    value=False,
                )

    # -- names from outside the flow ------------------------------------------------------

    def _schedules(self) -> None:
        shared = self.context.shared_schedules
        for name in self.flow.schedules:
            if name in shared:
                self._add(
                    "warning",
                    ("schedules", name),
                    f"local schedule {name!r} shadows the shared schedule of the same name",
                    value=False,
                )
        known = [*self.flow.schedules, *shared]
        for step_name, step in self.flow.steps.items():
            hours = step.hours if isinstance(step, HoursStep) else None
            if isinstance(hours, str) and hours not in known:
                self._add(
                    "error",
                    ("steps", step_name, "hours"),
                    f"unknown schedule {hours!r}{did_you_mean(hours, known)}",
                )

    def _queues(self) -> None:
        known = self.context.known_queues
        if known is None:
            return
        for step_name, step in self.flow.steps.items():
            if isinstance(step, QueueStep) and step.queue.name not in known:
                hint = did_you_mean(step.queue.name, list(known))
                self._add(
                    "error",
                    ("steps", step_name, "queue", "name"),
                    f"unknown queue {step.queue.name!r}{hint}",
                )

    def _recording_policies(self) -> None:
        known = self.context.recording_policies
        if known is None:
            return
        for step_name, step in self.flow.steps.items():
            spec = step.queue if isinstance(step, QueueStep) else (
                step.dial if isinstance(step, DialStep) else None)
            if spec is not None and spec.recording is not None and spec.recording not in known:
                self._add(
                    "error",
                    ("steps", step_name, step.kind, "recording"),
                    f"unknown recording policy {spec.recording!r}"
                    f"{did_you_mean(spec.recording, list(known))}",
                )

    # -- likely mistakes -----------------------------------------------------------------

    def _unguarded_http(self) -> None:
        if self.flow.on_error is not None:
            return
        for name, step in self.flow.steps.items():
            if isinstance(step, HttpStep) and step.error is None:
                self._add(
                    "warning",
                    ("steps", name),
                    f"http step {name!r} has no 'error' exit and the flow no 'on_error': a "
                    "failed request (timeout, connection error, non-2xx, invalid JSON) ends "
                    "the call with an apology",
                    value=False,
                )

    def _step_named_repeat(self) -> None:
        if "repeat" in self.flow.steps:
            self._add(
                "warning",
                ("steps", "repeat"),
                "step 'repeat' cannot be reached from a menu option: there 'repeat' replays "
                "the prompt; rename the step",
                value=False,
            )

    # -- templates and prompts ------------------------------------------------------------

    def _templates(self) -> None:
        for loc, value in _leaves(self.flow.variables, ("variables",)):
            self._template(loc, value)
        for name, step in self.flow.steps.items():
            for loc, value in _leaves(step, ("steps", name)):
                if isinstance(value, Prompt):
                    self._template(self._prompt_loc(loc, value), value.value)
                elif loc[-1] != "if":  # branch conditions are expressions, checked below
                    self._template(loc, value)
            if isinstance(step, BranchStep):
                for index, case in enumerate(step.branch):
                    loc = ("steps", name, "branch", index, "if")
                    for severity, message in expression_problems(case.condition, condition=True):
                        self._add(severity, loc, message)

    def _prompt_loc(self, loc: Loc, prompt: Prompt) -> Loc:
        """Where a prompt's value stands: inside ``{FORM: VALUE}`` when written so."""
        inner = (*loc, prompt.kind)
        return inner if inner in self.loaded.positions else loc

    def _template(self, loc: Loc, value: object) -> None:
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            for severity, message in expression_problems(value, condition=False):
                self._add(severity, loc, message)

    def _prompts(self) -> None:
        flows_dir = self.loaded.path.parent
        prompts_dir = flows_dir / "prompts"
        languages = self.flow.all_languages()
        for name, step in self.flow.steps.items():
            for loc, value in _leaves(step, ("steps", name)):
                if not isinstance(value, Prompt) or "{{" in value.value:
                    continue
                loc = self._prompt_loc(loc, value)
                if value.kind == "sound":
                    self._sound(loc, value.value, prompts_dir, languages)
                elif value.kind == "file":
                    try:
                        self._file(loc, confined_file(flows_dir, value.value))
                    except PromptError as exc:
                        self._add("error", loc, str(exc))

    def _sound(self, loc: Loc, name: str, prompts_dir: Path, languages: list[str]) -> None:
        for language in languages:
            local = _find_sound(prompts_dir, name, language)
            if local is not None:
                self._format(loc, local)
            elif name not in self.context.stock_sounds.get(language, ()):
                self._add(
                    "error",
                    loc,
                    f"prompt {name!r} not found for language {language!r}: no "
                    f"{prompts_dir}/{language}/{name}.* or {prompts_dir}/{name}.*, and not an "
                    "Asterisk sound",
                )

    def _file(self, loc: Loc, base: Path) -> None:
        found = sorted(base.parent.glob(f"{base.name}.*")) if base.parent.is_dir() else []
        if base.is_file():
            found.insert(0, base)
        if not found:
            self._add("error", loc, f"prompt file {base}.* not found")
        else:
            self._format(loc, found[0])

    def _format(self, loc: Loc, path: Path) -> None:
        problem = audio_problem(path)
        if problem is not None:
            self._add("error", loc, f"prompt file {path}: {problem}")


def _find_sound(prompts_dir: Path, name: str, language: str) -> Path | None:
    for folder in (prompts_dir / language, prompts_dir):
        if folder.is_dir():
            matches = sorted(p for p in folder.glob(f"{name}.*") if p.is_file())
            if matches:
                return matches[0]
    return None


def audio_problem(path: Path) -> str | None:
    """Why Asterisk cannot play ``path`` (``None`` when it can): WAV must be PCM 8 kHz mono
    16-bit; ulaw/alaw/gsm/g722 are accepted by extension."""
    suffix = path.suffix.lower()
    if suffix in RAW_AUDIO_EXTENSIONS:
        return None
    if suffix != ".wav":
        return f"{suffix or 'no extension'} is not a format Asterisk plays (use WAV 8 kHz mono)"
    try:
        data = path.read_bytes()[:4096]
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return "not a WAV file"
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = (
            data[offset : offset + 4],
            struct.unpack("<I", data[offset + 4 : offset + 8])[0],
        )
        if chunk == b"fmt " and offset + 24 <= len(data):
            fmt, channels, rate = struct.unpack("<HHI", data[offset + 8 : offset + 16])
            bits = struct.unpack("<H", data[offset + 22 : offset + 24])[0]
            if (fmt, channels, rate, bits) != (1, 1, 8000, 16):
                return (
                    f"WAV is {rate} Hz, {channels} channel(s), {bits}-bit, format {fmt}; "
                    "Asterisk needs PCM 8000 Hz mono 16-bit"
                )
            return None
        offset += 8 + size + (size & 1)
    return "WAV without a fmt chunk"


# --- helpers --------------------------------------------------------------------------------


def _is_end(step: StepBase) -> bool:
    if isinstance(step, HangupStep | GotoFlowStep):
        return True
    return isinstance(step, QueueStep) and step.after is None


def _reach(starts: list[str], graph: Mapping[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen


def _strongly_connected(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in discovery order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    out.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def _leaves(value: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    """Every leaf value (prompts count as leaves) with its location, using YAML key names."""
    if isinstance(value, Prompt):
        yield loc, value
    elif isinstance(value, BaseModel):
        for attr, info in type(value).model_fields.items():
            yield from _leaves(getattr(value, attr), (*loc, info.alias or attr))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*loc, index))
    else:
        yield loc, value
