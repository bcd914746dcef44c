"""Refuse gather ``validate`` regexes that can backtrack exponentially.

Python's ``re`` backtracks, and it cannot be interrupted: ``(\\d+)+$`` on 30 digits and a
trailing ``#`` runs for minutes on the event loop. The danger is a repeat inside a repeat where
the inner part can match the same text in more than one way: an inner repeat of variable length
(``(\\d+)+``, ``(\\d{2,3})*``) or an alternation (``(1|12)*``). This analyzer walks the parsed
pattern and refuses exactly those shapes; a fixed inner count (``(\\d{3}-)+``), an optional part
(``(\\d+)?``) and character classes (``[0-9]+``, ``(0|1)*`` which ``re`` turns into ``[01]*``) are
fine. What remains is at worst polynomial, and the engine only matches it against at most
``max_digits`` (64) keys.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

sre_parse: Any = importlib.import_module("re._parser")  # the parser behind re.compile (no stubs)

MAX_PATTERN_CHARS = 256
_REPEATS = frozenset(
    getattr(sre_parse, name)
    for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
    if hasattr(sre_parse, name)
)


def _nested(items: Any, in_repeat: bool) -> str | None:
    """The first dangerous shape in the parsed ``items``, or None."""
    for op, av in items:
        if op in _REPEATS:
            low, high, body = av
            if in_repeat and low != high:
                return "a repeat of variable length inside a repeat, like (\\d+)+"
            found = _nested(body, in_repeat or high > 1)
        elif op is sre_parse.BRANCH:
            if in_repeat:
                return "an alternation inside a repeat, like (1|12)*"
            found = next((f for b in av[1] if (f := _nested(b, in_repeat))), None)
        elif op is sre_parse.SUBPATTERN:
            found = _nested(av[3], in_repeat)
        elif op is sre_parse.ATOMIC_GROUP:
            found = _nested(av, in_repeat)
        elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            found = _nested(av[1], in_repeat)
        elif op is sre_parse.GROUPREF_EXISTS:
            found = _nested(av[1], in_repeat) or (_nested(av[2], in_repeat) if av[2] else None)
        else:
            found = None
        if found:
            return found
    return None


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused as a gather ``validate`` regex (None when it is fine): it does
    not compile, is longer than 256 chars, or can backtrack exponentially."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"regular expression longer than {MAX_PATTERN_CHARS} chars"
    try:
        re.compile(pattern)
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"invalid regular expression {pattern!r}: {exc}"
    shape = _nested(parsed, False)
    if shape:
        return (
            f"regular expression {pattern!r} can take exponential time ({shape}); write it"
            " without nesting, e.g. [0-9]{6,10}"
        )
    return None
