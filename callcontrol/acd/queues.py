"""Waiting entries of one queue, kept in routing order.

Order: higher caller priority first, then earlier entry time, then arrival sequence. The entry
time is given by the caller of :meth:`WaitingLine.add`, so an entry adopted after a daemon restart
keeps its original place. A callback entry is the same entry after its caller hung up: it keeps
its place, with the number to call back (a restarted daemon puts pending callbacks back at
theirs: :meth:`WaitingLine.put_back_callback`). Entries for the same number in the same queue are
merged, keeping the better place.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from callcontrol.config import QueueConfig
from callcontrol.store.records import new_id


@dataclass
class QueueEntry:
    """One caller (or callback) waiting in a queue.

    ``channel_id`` is ``None`` for a callback entry. ``offered_to`` is the agent being rung for
    it (at most one at a time); ``tried`` the agents that did not answer it, skipped while others
    are free. ``not_before`` holds a callback back until its retry time.
    """

    queue: str
    call_id: str
    channel_id: str | None
    number: str
    priority: int
    entered_at: datetime
    seq: int
    skills: Mapping[str, int] = field(default_factory=dict)
    entry_id: str = field(default_factory=new_id)
    callback_number: str | None = None
    callback_attempts: int = 0
    not_before: datetime | None = None
    offered_to: str | None = None
    tried: set[str] = field(default_factory=set)

    @property
    def is_callback(self) -> bool:
        """True once the caller has hung up and waits for a call back."""
        return self.callback_number is not None

    def sort_key(self) -> tuple[int, datetime, int]:
        """Routing order: priority (high first), entry time, arrival sequence."""
        return (-self.priority, self.entered_at, self.seq)

    def wait_seconds(self, now: datetime) -> float:
        """Seconds since the entry entered the queue."""
        return max(0.0, (now - self.entered_at).total_seconds())


class QueueFull(Exception):
    """The queue already holds its configured maximum of entries (an outcome: overflow)."""


class WaitingLine:
    """The entries of one queue, in routing order, plus recent answered waits."""

    RECENT_WAITS = 20

    def __init__(self, name: str, config: QueueConfig) -> None:
        self.name = name
        self.config = config
        self._entries: list[QueueEntry] = []
        self._seq = itertools.count()
        self._recent_waits: deque[float] = deque(maxlen=self.RECENT_WAITS)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[QueueEntry]:
        return iter(list(self._entries))

    def add(
        self,
        call_id: str,
        channel_id: str,
        number: str,
        entered_at: datetime,
        *,
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
    ) -> tuple[QueueEntry, QueueEntry | None]:
        """Put a live caller in line; returns the entry and the callback entry it replaced.

        A waiting callback entry for the same number is merged into the new entry, which takes
        the better of the two places. Raises :class:`QueueFull` when the line is at its
        maximum length (``max_length`` 0: no limit).
        """
        merged = self._callback_for(number)
        if merged is None and 0 < self.config.max_length <= len(self._entries):
            raise QueueFull(self.name)
        entry = QueueEntry(
            queue=self.name, call_id=call_id, channel_id=channel_id, number=number,
            priority=priority, entered_at=entered_at, seq=next(self._seq),
            skills=dict(skills or {}),
        )
        if merged is not None:
            self._entries.remove(merged)
            if merged.sort_key() < entry.sort_key():
                entry.priority, entry.entered_at, entry.seq = (
                    merged.priority, merged.entered_at, merged.seq)
        self._insert(entry)
        return entry, merged

    def to_callback(self, entry: QueueEntry, number: str) -> QueueEntry | None:
        """Turn a live entry into a callback entry in place; returns a duplicate callback
        entry for the same number that was merged away (the better place is kept)."""
        entry.channel_id = None
        entry.callback_number = number
        entry.offered_to = None
        duplicate = self._callback_for(number, besides=entry)
        if duplicate is not None:
            self._entries.remove(duplicate)
            if duplicate.sort_key() < entry.sort_key():
                entry.priority, entry.entered_at, entry.seq = (
                    duplicate.priority, duplicate.entered_at, duplicate.seq)
                self._entries.remove(entry)
                self._insert(entry)
        return duplicate

    def put_back_callback(
        self,
        call_id: str,
        number: str,
        entered_at: datetime,
        *,
        entry_id: str,
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
        attempts: int = 0,
        not_before: datetime | None = None,
    ) -> tuple[QueueEntry, QueueEntry | None]:
        """Put a pending callback of a previous daemon back at its place (never refused: it
        held that place already); returns it and a callback entry for the same number merged
        into it (the better place is kept)."""
        entry = QueueEntry(
            queue=self.name, call_id=call_id, channel_id=None, number=number,
            priority=priority, entered_at=entered_at, seq=next(self._seq),
            skills=dict(skills or {}), entry_id=entry_id, callback_number=number,
            callback_attempts=attempts, not_before=not_before,
        )
        duplicate = self._callback_for(number)
        if duplicate is not None:
            self._entries.remove(duplicate)
            if duplicate.sort_key() < entry.sort_key():
                entry.priority, entry.entered_at, entry.seq = (
                    duplicate.priority, duplicate.entered_at, duplicate.seq)
        self._insert(entry)
        return entry, duplicate

    def remove(self, entry: QueueEntry) -> bool:
        """Take an entry out of line; False when it was not there."""
        try:
            self._entries.remove(entry)
        except ValueError:
            return False
        return True

    def __contains__(self, entry: object) -> bool:
        return entry in self._entries

    def position(self, entry: QueueEntry) -> int:
        """1-based place in line (0 when not in line)."""
        for index, other in enumerate(self._entries, 1):
            if other is entry:
                return index
        return 0

    def record_answered_wait(self, seconds: float) -> None:
        """Remember an answered call's wait, for the estimated wait."""
        self._recent_waits.append(seconds)

    def estimated_wait(self) -> float | None:
        """Mean wait of the recently answered calls; ``None`` before any was answered."""
        if not self._recent_waits:
            return None
        return sum(self._recent_waits) / len(self._recent_waits)

    def _callback_for(self, number: str, besides: QueueEntry | None = None) -> QueueEntry | None:
        if not number:
            return None
        for other in self._entries:
            if other is not besides and other.is_callback and other.callback_number == number:
                return other
        return None

    def _insert(self, entry: QueueEntry) -> None:
        key = entry.sort_key()
        index = next(
            (i for i, other in enumerate(self._entries) if key < other.sort_key()),
            len(self._entries),
        )
        self._entries.insert(index, entry)
