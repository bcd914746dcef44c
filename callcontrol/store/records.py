"""The records domain code appends to the interaction log, and the log's port.

Every record carries a unique ``record_id`` so the journal can be replayed into the database
idempotently (DECISIONS.md, "Journal first"). Domain code calls :meth:`InteractionLog.append`,
which is synchronous and cheap: the record is written to the local journal and queued for the
database writer; it never waits on the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from callcontrol.telephony import utcnow

Outcome = Literal[
    "completed",
    "abandoned",
    "timed_out",
    "overflow",
    "no_agents",
    "voicemail",
    "callback_requested",
    "transferred",
    "failed",
    "lost",
    "interrupted",
]
OUTCOMES: tuple[str, ...] = Outcome.__args__  # type: ignore[attr-defined]


def new_id() -> str:
    """A fresh unique id (UUID4 hex) for records, calls, playbacks and bridges."""
    return uuid.uuid4().hex


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of every journaled record."""

    record_id: str = field(default_factory=new_id)
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, kw_only=True)
class CallOpened(Record):
    """A call reached the daemon: creates the call row."""

    call_id: str
    channel_id: str
    direction: Literal["inbound", "outbound"] = "inbound"
    sip_call_id: str | None = None
    caller_number: str = ""
    caller_name: str = ""
    extension: str = ""


@dataclass(frozen=True, kw_only=True)
class CallUpdated(Record):
    """Fields of the call row changed (``answered_at``, ``flow``, ``flow_version``, ``tags``,
    ``queue``, ``agent_id``, ``sip_call_id``...). Later updates win; ``tags`` are merged."""

    call_id: str
    fields: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class CallClosed(Record):
    """The call ended: sets ``ended_at`` (= ``at``), the terminal outcome and hangup cause.

    A call is closed once; a second close for the same call is ignored by the store.
    """

    call_id: str
    outcome: Outcome
    hangup_cause: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class CallEvent(Record):
    """One entry of a call's timeline (an event of consequence or a decision taken)."""

    call_id: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AgentEvent(Record):
    """One entry of an agent's timeline (state changes with their reason)."""

    agent_id: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class InteractionLog(Protocol):
    """Where domain code appends records. Synchronous, never blocks on the database."""

    def append(self, record: Record) -> None:
        """Journal the record and queue it for the database."""


RecordingStatus = Literal["recording", "complete", "partial", "missing", "purged"]


@dataclass(frozen=True, kw_only=True)
class RecordingStarted(Record):
    """A recording is about to start: creates its row (status ``recording``, ``started_at`` =
    ``at``). Appended *before* Asterisk is asked to write the file, so no file is ever
    without a row. ``path`` is relative to the recordings root; ``policy`` names the recording
    policy that caused it."""

    recording_id: str
    call_id: str
    n: int
    path: str
    policy: str
    format: str = "wav"
    channels: int = 2


@dataclass(frozen=True, kw_only=True)
class RecordingFinished(Record):
    """A recording ended (``ended_at`` = ``at``) with its file's figures: ``complete``, or
    ``partial`` when it was cut (a crash). Applies only to a row still ``recording``."""

    recording_id: str
    status: Literal["complete", "partial"]
    duration_s: float | None
    size_bytes: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class RecordingMarked(Record):
    """A recording's file is ``missing`` (found absent) or ``purged`` (deleted by retention,
    ``purged_at`` = ``at``). ``purged`` is final: nothing changes the row after it."""

    recording_id: str
    status: Literal["missing", "purged"]
