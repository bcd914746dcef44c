"""YAML 1.2 loading that remembers where each key and item stood (1-based line and column).

Used by the config loader and the flow loader so that every error reads ``FILE:LINE:COL``.
Whatever the text holds, loading ends quickly with data or with a :class:`YamlSyntaxError`
at a position, never with another exception:

- a file is read only when it is a regular file of at most :data:`MAX_YAML_BYTES`, as UTF-8;
- before anything is built, one pass over the parser's events (iterative, linear in the text)
  bounds the nesting depth (:data:`MAX_DEPTH`) and the number of nodes the data will have once
  every alias is expanded (:data:`MAX_NODES`), and refuses an alias inside its own anchor: a
  few hundred bytes of nested aliases cannot grow into gigabytes;
- a value the YAML layer cannot build (``2024-13-45`` read as a date, an integer of 10 000
  digits) is reported at that value.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import (
    CommentedBase,
    CommentedMap,
    CommentedSeq,
    CommentedSet,
    TaggedScalar,
)
from ruamel.yaml.constructor import ConstructorError, DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    NodeEvent,
)
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from callcontrol.errors import ConfigError

Loc = tuple[str | int, ...]
Positions = dict[Loc, tuple[int, int]]

MAX_YAML_BYTES = 256 * 1024
"""Largest YAML file read (flows and config are written by hand: ~100 times the demo's)."""

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists, aliases expanded."""

MAX_NODES = 100_000
"""Most keys, values and items the data may hold once every alias is expanded."""

MAX_INT_BITS = 128
"""Largest integer a YAML value may hold (a longer number is text: quote it)."""


_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


class YamlSyntaxError(ConfigError):
    """The text is not valid YAML; the message reads ``FILE:LINE:COL: message``."""

    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.line = line
        self.col = col


def _error(filename: str, line: int, col: int, message: str) -> YamlSyntaxError:
    return YamlSyntaxError(f"{filename}:{line}:{col}: {message}", line, col)


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based (line, col) of character ``index`` of ``text``."""
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def read_yaml_file(path: Path, what: str) -> str:
    """The text of the YAML file at ``path`` (``what``: "flow", "config" for messages).

    Raises :class:`YamlSyntaxError` when it is not a regular file, is larger than
    :data:`MAX_YAML_BYTES`, cannot be read, or is not UTF-8 (at the first bad byte).
    """
    name = str(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise _error(name, 1, 1, f"cannot read {what}: not a regular file")
        if info.st_size > MAX_YAML_BYTES:
            raise _error(
                name, 1, 1, f"{what} file is {info.st_size} bytes: the limit is {MAX_YAML_BYTES}"
            )
        with path.open("rb") as stream:
            data = stream.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise _error(name, 1, 1, f"cannot read {what}: {exc.strerror or exc}") from None
    if len(data) > MAX_YAML_BYTES:  # it grew since stat()
        raise _error(name, 1, 1, f"{what} file is over the limit of {MAX_YAML_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        line, col = _line_col(before, len(before))
        raise _error(
            name, line, col, f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


class _Constructor(RoundTripConstructor):
    """Round-trip construction that reports a value it cannot build at that value."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            data = super().construct_non_recursive_object(node, tag)
        except YAMLError:
            raise
        except Exception as exc:
            raise _invalid(node, str(exc)) from None
        if isinstance(data, int) and data.bit_length() > MAX_INT_BITS:
            raise _invalid(node, f"integers are limited to {MAX_INT_BITS} bits")
        return data


def _invalid(node: Any, why: str) -> ConstructorError:
    shown = node.value if isinstance(node.value, str) else str(node.tag)
    if len(shown) > 40:
        shown = shown[:40] + "..."
    return ConstructorError(
        problem=f"invalid value {shown!r} ({why}); quote it to keep it as text",
        problem_mark=node.start_mark,
    )


def _bracket_guard(text: str, filename: str) -> None:
    """Refuse more than :data:`MAX_DEPTH` open ``[``/``{`` before the scanner sees them (it
    looks ahead over every open bracket for a possible key: quadratic in their number).

    Brackets inside quoted scalars and comments do not count; the count may run high on
    brackets inside plain or block text, which matters only past :data:`MAX_DEPTH` unclosed.
    """
    depth = 0
    quote = ""
    previous = "\n"
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\" and quote == '"':
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"" and previous in " \t\n[{,:":
            quote = char
        elif char == "#" and previous in " \t\n":
            index = text.find("\n", index)
            if index < 0:
                return
            char = "\n"
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _error(filename, *_line_col(text, index), _TOO_DEEP)
        elif char in "]}":
            depth = max(0, depth - 1)
        previous = char
        index += 1


@dataclass
class _Frame:
    """A mapping or list being read in the bounding pass."""

    anchor: str | None
    nodes: int = 1
    depth: int = 1


def _bound(yaml: YAML, text: str, filename: str) -> None:
    """The bounding pass over parser events (see the module docstring)."""
    sizes: dict[str, tuple[int, int]] = {}
    stack: list[_Frame] = []
    total = 0

    def add(event: Event, nodes: int, depth: int) -> None:
        nonlocal total
        total += nodes
        mark = event.start_mark
        if total > MAX_NODES:
            raise _error(
                filename,
                mark.line + 1,
                mark.column + 1,
                f"the data holds more than {MAX_NODES} values once aliases are expanded",
            )
        if len(stack) + depth > MAX_DEPTH:
            raise _error(
                filename,
                mark.line + 1,
                mark.column + 1,
                _TOO_DEEP
                + (" once aliases are expanded" if isinstance(event, AliasEvent) else ""),
            )
        if stack:
            stack[-1].nodes += nodes
            stack[-1].depth = max(stack[-1].depth, depth + 1)

    for event in yaml.parse(text):
        if isinstance(event, CollectionStartEvent):
            add(event, 1, 1)
            stack.append(_Frame(event.anchor))
        elif isinstance(event, CollectionEndEvent):
            frame = stack.pop()
            if frame.anchor is not None:
                sizes[frame.anchor] = (frame.nodes, frame.depth)
            if stack:
                stack[-1].depth = max(stack[-1].depth, frame.depth + 1)
                stack[-1].nodes += frame.nodes - 1
        elif isinstance(event, AliasEvent):
            if any(frame.anchor == event.anchor for frame in stack):
                mark = event.start_mark
                raise _error(
                    filename,
                    mark.line + 1,
                    mark.column + 1,
                    f"alias *{event.anchor} is inside its own anchor (a recursive structure)",
                )
            add(event, *sizes.get(event.anchor or "", (1, 1)))
        elif isinstance(event, NodeEvent):  # a scalar
            add(event, 1, 1)
            if event.anchor is not None:
                sizes[event.anchor] = (1, 1)


class _Plain:
    """Turns ruamel's round-trip data into plain dicts, lists and scalars, noting positions;
    refuses what has no place in a config or flow (sets, binary, unknown tags, keys that are
    collections)."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.positions: Positions = {(): (1, 1)}

    def refuse(self, loc: Loc, message: str) -> YamlSyntaxError:
        where = (*loc, "<value>") if (*loc, "<value>") in self.positions else loc
        return _error(self.filename, *position_of(self.positions, where), message)

    def convert(self, node: Any, loc: Loc) -> Any:
        if isinstance(node, CommentedMap):
            return self.mapping(node, loc)
        if isinstance(node, CommentedSeq):
            items = []
            for index, value in enumerate(node):
                with suppress(KeyError, TypeError):
                    line, col = node.lc.item(index)
                    self.positions[(*loc, index)] = (line + 1, col + 1)
                items.append(self.convert(value, (*loc, index)))
            return items
        return self.scalar(node, loc)

    def mapping(self, node: CommentedMap, loc: Loc) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value in node.items():
            try:
                line, col = node.lc.key(key)
            except (KeyError, TypeError):
                line, col = node.lc.line, node.lc.col
            if not isinstance(key, _PLAIN_KEYS) or isinstance(key, CommentedBase):
                raise _error(self.filename, line + 1, col + 1, "a key must be a single value")
            key = self.scalar(key, loc)
            self.positions[(*loc, key)] = (line + 1, col + 1)
            with suppress(KeyError, TypeError):
                vline, vcol = node.lc.value(key)
                self.positions[(*loc, key, "<value>")] = (vline + 1, vcol + 1)
            out[key] = self.convert(value, (*loc, key))
        return out

    def scalar(self, node: Any, loc: Loc) -> Any:
        if isinstance(node, str):
            return str(node)
        if isinstance(node, ScalarBoolean | bool):
            return bool(node)
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if node is None or isinstance(node, date):
            return node
        if isinstance(node, TaggedScalar) and str(node.tag) == "tag:yaml.org,2002:str":
            return str(node.value)
        if isinstance(node, TaggedScalar):
            raise self.refuse(loc, f"the tag {node.tag} is not supported here")
        kinds: dict[type, str] = {bytes: "binary values (!!binary)", CommentedSet: "sets (!!set)"}
        kind = kinds.get(type(node), type(node).__name__)
        raise self.refuse(loc, f"{kind} are not supported here: use text, a list or a mapping")


_PLAIN_KEYS = (str, int, float, date, type(None))


def load_yaml_with_positions(text: str, filename: str) -> tuple[Any, Positions]:
    """Parse YAML 1.2 text; return plain data and a map of location -> (line, col).

    Raises :class:`YamlSyntaxError` for anything it cannot turn into data: syntax errors,
    duplicate keys, characters YAML refuses, values it cannot build, and text past the bounds
    above. No other exception leaves it.
    """
    if len(text) > MAX_YAML_BYTES:
        raise _error(filename, 1, 1, f"the text is over the limit of {MAX_YAML_BYTES} bytes")
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    yaml.allow_duplicate_keys = False
    try:
        _bracket_guard(text, filename)
        _bound(yaml, text, filename)
        node = yaml.load(text)
        plain = _Plain(filename)
        return plain.convert(node, ()), plain.positions
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise _error(filename, line, col, f"duplicate key: {exc.problem}") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        raise _error(filename, line, col, what) from None
    except ReaderError as exc:
        line, col = _line_col(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else 0
        raise _error(
            filename, line, col, f"character U+{code:04X} is not allowed in YAML ({exc.reason})"
        ) from None
    except YamlSyntaxError:
        raise
    except Exception as exc:  # anything else the YAML layer raises: still a finding
        raise _error(filename, 1, 1, f"cannot read YAML: {type(exc).__name__}: {exc}") from None


def dotted(loc: Sequence[object]) -> str:
    """A data location as ``a.b.0.c`` for messages, on one line: characters that do not print
    (a line separator in a key, say) are shown escaped."""
    text = ".".join(str(part) for part in loc)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def position_of(positions: Positions, loc: Sequence[str | int]) -> tuple[int, int]:
    """The position of the longest known prefix of ``loc`` (pydantic error locations)."""
    parts = tuple(loc)
    while parts:
        if parts in positions:
            return positions[parts]
        parts = parts[:-1]
    return positions.get((), (1, 1))
