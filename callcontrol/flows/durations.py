"""Durations as flows write them: ``500ms``, ``5s``, ``2m``, ``1h`` or a bare number of seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")

DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"
"""A JSON-Schema pattern for the string form (used by the flow schema)."""


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds; raise :class:`ValueError` with a readable message."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 5s, 500ms, 2m or 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"invalid duration {value!r}: use a number of seconds or 500ms, 5s, 2m, 1h"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"expected a duration like 5s, 500ms, 2m or 1h, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration must not be negative, got {value!r}")
    return seconds
