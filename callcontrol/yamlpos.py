"""YAML 1.2 loading that remembers where each key and item stood (1-based line and column).

Used by the config loader and the flow loader so that every error reads ``FILE:LINE:COL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError

from callcontrol.errors import ConfigError

Loc = tuple[str | int, ...]
Positions = dict[Loc, tuple[int, int]]


class YamlSyntaxError(ConfigError):
    """The text is not valid YAML; the message reads ``FILE:LINE:COL: message``."""

    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.line = line
        self.col = col


def _plain(node: Any, loc: Loc, positions: Positions) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            try:
                line, col = node.lc.key(key)
            except (KeyError, TypeError):
                line, col = node.lc.line, node.lc.col
            positions[(*loc, key)] = (line + 1, col + 1)
            try:
                vline, vcol = node.lc.value(key)
                positions[(*loc, key, "<value>")] = (vline + 1, vcol + 1)
            except (KeyError, TypeError):
                pass
            out[key] = _plain(value, (*loc, key), positions)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            try:
                line, col = node.lc.item(index)
                positions[(*loc, index)] = (line + 1, col + 1)
            except (KeyError, TypeError):
                pass
            items.append(_plain(value, (*loc, index), positions))
        return items
    if isinstance(node, str):
        return str(node)
    return node


def load_yaml_with_positions(text: str, filename: str) -> tuple[Any, Positions]:
    """Parse YAML 1.2 text; return plain data and a map of location -> (line, col).

    Raises :class:`YamlSyntaxError` for syntax errors and duplicate keys.
    """
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        node = yaml.load(text)
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(
            f"{filename}:{line}:{col}: duplicate key: {exc.problem}", line, col
        ) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        raise YamlSyntaxError(f"{filename}:{line}:{col}: {what}", line, col) from None
    positions: Positions = {(): (1, 1)}
    return _plain(node, (), positions), positions


def position_of(positions: Positions, loc: Sequence[str | int]) -> tuple[int, int]:
    """The position of the longest known prefix of ``loc`` (pydantic error locations)."""
    parts = tuple(loc)
    while parts:
        if parts in positions:
            return positions[parts]
        parts = parts[:-1]
    return positions.get((), (1, 1))
