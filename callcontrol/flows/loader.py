"""Load one flow file: YAML 1.2 with positions, validated into a :class:`Flow`.

Every problem of the file is reported at once as ``PATH:LINE:COL: message`` (1-based, at the
offending key or value) inside a :class:`~callcontrol.errors.FlowError`. The flow's version is a
short SHA-256 of the file's bytes.
"""

from __future__ import annotations

import hashlib
import types
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from callcontrol.errors import FlowError
from callcontrol.flows.model import (
    ALL_EXITS,
    STEP_MODELS,
    BranchCase,
    Flow,
    Schedule,
    StepBase,
    action_keys,
    did_you_mean,
)
from callcontrol.yamlpos import (
    Loc,
    Positions,
    YamlSyntaxError,
    dotted,
    load_yaml_with_positions,
    read_yaml_file,
)

VERSION_LENGTH = 12
"""Hex digits kept of the SHA-256 that versions a flow."""

# Names users reach for that are called something else here (context -> wrong -> right).
_SYNONYMS: dict[str, dict[str, str]] = {
    "queue": {"timeout": "max_wait", "wait": "max_wait", "music": "moh"},
    "record": {"timeout": "max_duration", "max_length": "max_duration", "silence": "max_silence"},
    "gather": {"regex": "validate", "pattern": "validate", "digits": "max_digits"},
    "menu": {"choices": "options", "keys": "options"},
    "*": {"retries": "attempts", "tries": "attempts", "variable": "save_as", "var": "save_as"},
}


@dataclass(frozen=True)
class LoadedFlow:
    """A valid flow with where it came from: its file, version and the positions of its YAML
    keys and values (for findings that point into the file)."""

    flow: Flow
    path: Path
    version: str
    positions: Positions

    def position(self, loc: Loc, *, value: bool = True) -> tuple[int, int]:
        """1-based (line, col) of the value at ``loc`` (or of its key when ``value`` is false
        or the value has no position); the nearest known parent when ``loc`` is unknown."""
        return _position(self.positions, loc, value=value)


def content_version(data: bytes) -> str:
    """The version of a flow file's content: a short SHA-256 hex digest."""
    return hashlib.sha256(data).hexdigest()[:VERSION_LENGTH]


def load_flow(path: Path) -> LoadedFlow:
    """Load and validate the flow file at ``path``; raise :class:`FlowError` with every
    finding of the file (whatever the file holds: no other exception leaves)."""
    try:
        text = read_yaml_file(path, "flow")
    except YamlSyntaxError as exc:
        raise FlowError([str(exc)]) from None
    return _load(text, path, content_version(text.encode("utf-8")))


def load_flow_text(text: str, path: Path) -> LoadedFlow:
    """Load and validate flow YAML ``text`` as if read from ``path`` (the name must match)."""
    return _load(text, path, content_version(text.encode("utf-8")))


def _load(text: str, path: Path, version: str) -> LoadedFlow:
    try:
        return _validate(text, path, version)
    except FlowError:
        raise
    except Exception as exc:  # a bug of ours, but the file still gets a finding, not a crash
        raise FlowError([f"{path}:1:1: cannot load flow: {type(exc).__name__}: {exc}"]) from None


def _validate(text: str, path: Path, version: str) -> LoadedFlow:
    try:
        raw, positions = load_yaml_with_positions(text, str(path))
    except YamlSyntaxError as exc:
        raise FlowError([str(exc)]) from None
    if not isinstance(raw, dict):
        raise FlowError([f"{path}:1:1: a flow file is a mapping with flow, start and steps"])
    findings: list[tuple[int, int, str]] = []
    expected = path.stem
    name = raw.get("flow")
    if isinstance(name, str) and name != expected:
        line, col = _position(positions, ("flow",), value=True)
        findings.append(
            (line, col, f"flow name {name!r} must be the file name without .yaml ({expected!r})")
        )
    flow: Flow | None = None
    try:
        flow = Flow.model_validate(raw)
    except ValidationError as exc:
        findings.extend(_finding(err, raw, positions) for err in exc.errors())
    if findings or flow is None:
        raise FlowError([f"{path}:{line}:{col}: {msg}" for line, col, msg in sorted(findings)])
    return LoadedFlow(flow.with_version(version), path, version, positions)


# --- positions ------------------------------------------------------------------------------


def _position(positions: Positions, loc: Loc, *, value: bool) -> tuple[int, int]:
    parts = tuple(loc)
    while parts and parts not in positions:
        parts = parts[:-1]
    if value and (*parts, "<value>") in positions:
        return positions[(*parts, "<value>")]
    return positions.get(parts, (1, 1))


def _raw_loc(raw: Any, loc: tuple[int | str, ...]) -> tuple[Loc, Any, bool]:
    """Map a pydantic error location onto the YAML data: drop union tags, find list items
    that became mapping keys; return the location, the data there and whether the error is
    about a key."""
    node, out, is_key = raw, [], False
    for part in loc:
        if part == "[key]":
            is_key = True
            break
        if isinstance(part, str) and part.startswith("<"):
            continue
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            out.append(part)
        elif isinstance(node, list) and isinstance(part, str):
            index = next((i for i, item in enumerate(node) if _same(item, part)), None)
            if index is None:
                break
            node = node[index]
            out.append(index)
        else:
            break
    return tuple(out), node, is_key


def _same(item: object, key: str) -> bool:
    return (isinstance(item, date) and item.isoformat() == key) or item == key


# --- messages -------------------------------------------------------------------------------


def _finding(err: ErrorDetails, raw: dict[str, Any], positions: Positions) -> tuple[int, int, str]:
    loc = tuple(err["loc"])
    raw_loc, node, is_key = _raw_loc(raw, loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        message = _unknown_field(loc)
        is_key = True
    elif kind == "missing":
        message = _missing(loc)
        is_key = True
    elif kind == "step_action":
        message, raw_loc = _step_action(raw, loc)
        is_key = True
    elif kind == "at_key" and isinstance(node, dict):
        ctx = err.get("ctx", {})
        key = next((k for k in ctx["keys"] if k in node), None)
        if key is not None:
            raw_loc, node, is_key = (*raw_loc, key), node[key], ctx["on_key"]
        message = f"{_dotted(loc)}: {err['msg']}"
    elif kind == "string_type":
        message = f"{_dotted(loc)}: must be text, got {err['input']!r} (quote it)"
    else:
        message = f"{_dotted(loc)}: {err['msg'].removeprefix('Value error, ')}"
    if node is None:  # a null has no useful column of its own: point at its key
        is_key = True
    line, col = _position(positions, raw_loc, value=not is_key)
    return line, col, message


def _dotted(loc: tuple[int | str, ...]) -> str:
    return dotted(_clean(loc))


def _clean(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    return tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("<", "[key]"))))


def _unknown_field(loc: tuple[int | str, ...]) -> str:
    key = str(loc[-1])
    parent = _model_at(loc[:-1])
    clean = _clean(loc)
    if parent is Flow:
        if key == "version":
            return "'version' is not written in a flow: it is the hash of the file's content"
        return f"unknown top-level key {key!r}{did_you_mean(key, _fields(Flow))}"
    if parent is not None and issubclass(parent, StepBase):
        return _unknown_in_step(key, str(clean[-2]), parent)
    fields = _fields(parent) if parent is not None else []
    context = _context(parent, clean)
    hint = _SYNONYMS.get(context, {}).get(key) or _SYNONYMS["*"].get(key)
    suggestion = f"; did you mean {hint!r}?" if hint in fields else did_you_mean(key, fields)
    message = f"unknown field {key!r} in {context}{suggestion}"
    step_model = STEP_MODELS.get(context)
    if step_model is not None and key in (*step_model.EXITS, "error"):
        message += f" ({key!r} is an exit: write it beside '{context}:', not inside)"
    return message


def _unknown_in_step(key: str, step: str, model: type[StepBase]) -> str:
    kind = model.KIND
    if key in ALL_EXITS:
        exits = ", ".join((*model.EXITS, "error"))
        if kind == "menu":
            exits = "the option keys, " + exits
        return f"{key!r} is not an exit of a {kind} step (its exits: {exits})"
    spec = _model_at((kind,), start=model)
    if spec is not None and key in _fields(spec):
        return f"unknown field {key!r} in step {step!r}: it belongs inside '{kind}:'"
    return f"unknown field {key!r} in step {step!r}{did_you_mean(key, _fields(model))}"


def _missing(loc: tuple[int | str, ...]) -> str:
    key = str(loc[-1])
    parent = _model_at(loc[:-1])
    clean = _clean(loc)
    if parent is Flow:
        return f"missing top-level key {key!r}"
    if parent is not None and issubclass(parent, StepBase):
        step = clean[-2]
        if key in ALL_EXITS:
            return f"step {step!r} has no {key!r} exit, which a {parent.KIND} step needs"
        return f"step {step!r} needs {key!r}"
    return f"missing field {key!r} in {_context(parent, clean)}"


def _step_action(raw: dict[str, Any], loc: tuple[int | str, ...]) -> tuple[str, Loc]:
    name = loc[-1]
    step = raw["steps"][name]
    kinds = ", ".join(STEP_MODELS)
    if not isinstance(step, dict):
        return f"step {name!r} must be a mapping with one action key ({kinds})", ("steps", name)
    keys = action_keys(step)
    if keys:
        return (
            f"step {name!r} has {len(keys)} action keys ({', '.join(keys)}); a step does one "
            "thing: split it into steps joined by 'next'",
            ("steps", name, keys[1]),
        )
    for key in step:
        guess = did_you_mean(str(key), list(STEP_MODELS))
        if guess and key not in ALL_EXITS:
            return f"unknown field {key!r} in step {name!r}{guess}", ("steps", name, key)
    return f"step {name!r} has no action key: add one of {kinds}", ("steps", name)


def _context(model: type[BaseModel] | None, clean: tuple[int | str, ...]) -> str:
    if model is Schedule:
        return (
            f"schedule {clean[-2]!r}"
            if len(clean) >= 3 and clean[-3] == "schedules"
            else ("schedule")
        )
    if len(clean) >= 2 and clean[-2] in STEP_MODELS:
        return str(clean[-2])
    if model is BranchCase:
        return "branch case"
    return model.__name__.lower() if model is not None else "this mapping"


def _fields(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


# --- walking the models along an error location ---------------------------------------------


def _unwrap(tp: Any) -> Any:
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _tagged(tp: Any, tag: str) -> Any:
    for member in get_args(tp):
        if get_origin(member) is Annotated and any(
            isinstance(meta, Tag) and meta.tag == tag for meta in get_args(member)[1:]
        ):
            return member
    return None


def _model_at(loc: tuple[int | str, ...], start: Any = Flow) -> type[BaseModel] | None:
    tp: Any = start
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, str) and part.startswith("<"):
            tp = _tagged(tp, part)
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            info = next(
                (i for n, i in tp.model_fields.items() if (i.alias or n) == part),
                None,
            )
            tp = info.annotation if info is not None else None
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return None
        if tp is None:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
