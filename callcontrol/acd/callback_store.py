"""Pending callbacks survive a daemon restart (DECISIONS.md, "Durability and recovery").

A confirmed callback lives in memory as a queue entry until it is served, but every change of it
is appended first to the store's journal, on the timeline of the call that asked for it (the
ACD's :meth:`~callcontrol.acd.router.Acd.log_call`):

    callback_requested   its place: queue, entry_id, number, priority, entered_at, skills
    callback_attempt     an attempt started (the agent is rung first)
    agent_no_answer      the agent did not answer: that attempt ends, not counted
    callback_retry       an attempt failed: ``attempts`` so far, ``not_before`` the next try
    callback_restored    put back by a restarted daemon (``attempts`` carried over)
    callback_connected   agent and customer bridged: served          }
    callback_failed      the last attempt failed: given up           }  closed for good
    callback_merged      merged into an entry for the same number    }

At start, after the agents are restored and before the PBX link is up, :func:`restore_callbacks`
reads the timelines of the calls whose callback is not closed, replays them
(:func:`pending_callbacks`) and puts each callback back in its queue at its original place
(priority, then entry time) with the attempts it had; the normal router and callback runner
serve it from there. An attempt in flight when the previous daemon died (started, not
concluded) counts as failed: ``callback_retry`` (or ``callback_failed`` when it was the last one)
is journaled with reason ``interrupted`` before the entry goes back in line, so another restart
finds the same state. The rebuild is idempotent and a callback is connected at most once.

A call asks for one callback at most (its flow ends there), so a call's timeline holds at most
one callback; the replay still keys everything by ``entry_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.queues import QueueEntry
from callcontrol.acd.router import Acd
from callcontrol.calls.context import TimelineEntry
from callcontrol.logging import get_logger
from callcontrol.store.callbacks import open_callback_timelines

_log = get_logger(__name__)

CLOSING_KINDS = frozenset({"callback_connected", "callback_failed", "callback_merged"})
"""Timeline kinds after which a callback is never served again."""


@dataclass
class PendingCallback:
    """A callback requested and not closed, as its call's timeline tells it."""

    call_id: str
    queue: str
    entry_id: str
    number: str
    priority: int
    entered_at: datetime
    skills: dict[str, int] = field(default_factory=dict)
    attempts: int = 0  # failed attempts so far
    not_before: datetime | None = None  # the next attempt's earliest time
    in_flight: bool = False  # an attempt started and did not conclude

    def sort_key(self) -> tuple[int, datetime]:
        """Routing order: priority (high first), then entry time."""
        return (-self.priority, self.entered_at)


@dataclass(frozen=True)
class RestoredCallbacks:
    """What :func:`put_back` did: the entries back in line, and the calls whose attempt the
    restart cut (their callback bridge may still exist on the PBX)."""

    entries: list[QueueEntry]
    interrupted: list[str]


def pending_callbacks(call_id: str, timeline: Sequence[TimelineEntry]) -> list[PendingCallback]:
    """The callbacks of one call still to serve at the end of ``timeline`` (see the module
    docstring). A ``callback_requested`` written before it carried its place takes it from the
    ``queue_entered`` / ``queue_readmitted`` of the same entry."""
    places: dict[str, Mapping[str, Any]] = {}
    pending: dict[str, PendingCallback] = {}
    for event in timeline:
        kind, data = event.kind, event.data
        if kind in ("queue_entered", "queue_readmitted") and data.get("entry_id"):
            places[str(data["entry_id"])] = data
        elif kind == "callback_requested":
            entry_id = str(data["entry_id"])
            place = {**places.get(entry_id, {}), **data}
            pending[entry_id] = PendingCallback(
                call_id=call_id, queue=str(data["queue"]), entry_id=entry_id,
                number=str(data["number"]), priority=int(place.get("priority") or 0),
                entered_at=_time(place.get("entered_at")) or event.at,
                skills={str(k): int(v) for k, v in (place.get("skills") or {}).items()},
            )
        elif (callback := _subject(data, pending)) is not None:
            if kind in CLOSING_KINDS:
                del pending[callback.entry_id]
            elif kind == "callback_attempt":
                callback.in_flight = True
            elif kind == "agent_no_answer":
                callback.in_flight = False
            elif kind in ("callback_retry", "callback_restored"):
                callback.attempts = int(data.get("attempts") or 0)
                callback.not_before = _time(data.get("not_before"))
                callback.in_flight = False
    return list(pending.values())


def _subject(data: Mapping[str, Any], pending: Mapping[str, PendingCallback]
             ) -> PendingCallback | None:
    """The pending callback an event is about (an event without ``entry_id``, written before
    every callback event carried one: the call's only callback)."""
    entry_id = data.get("entry_id")
    if entry_id is not None:
        return pending.get(str(entry_id))
    return next(iter(pending.values())) if len(pending) == 1 else None


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


async def load_pending_callbacks(engine: AsyncEngine) -> list[PendingCallback]:
    """Every callback requested and not closed, from the store, in routing order."""
    timelines = await open_callback_timelines(engine, CLOSING_KINDS)
    found = [callback for call_id, timeline in timelines.items()
             for callback in pending_callbacks(call_id, timeline)]
    return sorted(found, key=PendingCallback.sort_key)


def put_back(acd: Acd, pending: Sequence[PendingCallback]) -> RestoredCallbacks:
    """Put ``pending`` callbacks back in their queues (see the module docstring); a callback
    whose queue is gone from the config is closed (``callback_failed``, ``queue_removed``)."""
    now, settings = acd.clock(), acd.settings
    entries: list[QueueEntry] = []
    interrupted: list[str] = []
    for callback in sorted(pending, key=PendingCallback.sort_key):
        ids = {"queue": callback.queue, "entry_id": callback.entry_id}
        if callback.queue not in acd.lines:
            acd.log_call(callback.call_id, "callback_failed", **ids, reason="queue_removed",
                         attempts=callback.attempts)
            continue
        attempts, not_before = callback.attempts, callback.not_before
        if callback.in_flight:
            attempts += 1
            interrupted.append(callback.call_id)
            if attempts >= settings.callback_attempts:
                acd.log_call(callback.call_id, "callback_failed", **ids, reason="interrupted",
                             attempts=attempts)
                continue
            not_before = now + timedelta(seconds=settings.callback_retry_delay)
            acd.log_call(callback.call_id, "callback_retry", **ids, reason="interrupted",
                         attempts=attempts, not_before=not_before.isoformat())
        entries.append(acd.restore_callback(
            callback.queue, callback.call_id, callback.number, entry_id=callback.entry_id,
            entered_at=callback.entered_at, priority=callback.priority,
            skills=callback.skills, attempts=attempts,
            not_before=not_before if not_before is not None and not_before > now else None,
        ))
    return RestoredCallbacks(entries, interrupted)


async def restore_callbacks(engine: AsyncEngine, acd: Acd) -> RestoredCallbacks:
    """At start: every pending callback of the store back in line (see the module
    docstring)."""
    restored = put_back(acd, await load_pending_callbacks(engine))
    if restored.entries or restored.interrupted:
        _log.info("callbacks_restored", entries=[e.entry_id for e in restored.entries],
                  interrupted=restored.interrupted)
    return restored
