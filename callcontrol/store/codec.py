"""Records to and from journal lines: one JSON object per line with a type tag.

A line reads ``{"seq": 7, "type": "CallEvent", "record": {...}}``. Datetimes are written as
ISO-8601 strings; free-form ``data``/``fields`` values are made JSON-ready on the way in, so a
record read back from the journal is what the database receives.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from callcontrol.store.records import (
    AgentEvent,
    AgentRemoved,
    AgentSaved,
    CallClosed,
    CallEvent,
    CallOpened,
    CallUpdated,
    Record,
    RecordingFinished,
    RecordingMarked,
    RecordingStarted,
)

RECORD_TYPES: dict[str, type[Record]] = {
    cls.__name__: cls
    for cls in (CallOpened, CallUpdated, CallClosed, CallEvent, AgentEvent, AgentSaved,
                AgentRemoved, RecordingStarted, RecordingFinished, RecordingMarked)
}

# Call-row columns that hold datetimes when they travel inside ``CallUpdated.fields``.
DATETIME_FIELDS = frozenset({"started_at", "answered_at", "ended_at", "disposition_at"})


class BadLine(ValueError):
    """A journal line that cannot be decoded (torn by a crash, or from an unknown version)."""


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO strings, tuples/sets as lists, and other objects as str."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def encode_line(seq: int, record: Record) -> bytes:
    """The journal line (with its newline) for ``record`` at sequence number ``seq``."""
    body = {f.name: jsonable(getattr(record, f.name)) for f in dataclasses.fields(record)}
    line = {"seq": seq, "type": type(record).__name__, "record": body}
    return (json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def decode_line(line: bytes) -> tuple[int, Record]:
    """``(seq, record)`` from one journal line; raise :class:`BadLine` when it is not one."""
    try:
        obj = json.loads(line)
        seq = obj["seq"]
        cls = RECORD_TYPES[obj["type"]]
        body = dict(obj["record"])
        body["at"] = datetime.fromisoformat(body["at"])
        if cls is CallUpdated:
            body["fields"] = {
                k: datetime.fromisoformat(v) if k in DATETIME_FIELDS and isinstance(v, str) else v
                for k, v in body["fields"].items()
            }
        record = cls(**body)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadLine(str(exc)) from exc
    if not isinstance(seq, int):
        raise BadLine(f"seq is not an integer: {seq!r}")
    return seq, record
