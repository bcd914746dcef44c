"""Queue statistics: live figures from the ACD, period figures from the raw event log.

Period figures are computed only from the records the ACD appends (``queue_entered``,
``queue_left``, ``queue_refused``, ``agent_disconnected`` call events and the agents' ``state``
events), with the definitions written in ``docs/queue-statistics.md``.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.acd.agents import AgentState
from callcontrol.acd.router import Acd
from callcontrol.clock import utcnow
from callcontrol.config import QueueConfig
from callcontrol.store.records import AgentEvent, CallEvent, InteractionLog, Record
from callcontrol.store.reports import period_records


def live_stats(acd: Acd) -> dict[str, dict[str, Any]]:
    """Per queue: callers waiting, callbacks waiting, longest wait, agents by state."""
    now = acd.clock()
    result: dict[str, dict[str, Any]] = {}
    for name, line in acd.lines.items():
        live = [e for e in line if not e.is_callback]
        by_state = {state.value: 0 for state in AgentState}
        for agent_id in acd.members[name]:
            by_state[acd.board.agents[agent_id].state.value] += 1
        result[name] = {
            "waiting": len(live),
            "callbacks": len(line) - len(live),
            "longest_wait_s": round(max((e.wait_seconds(now) for e in live), default=0.0), 3),
            "estimated_wait_s": line.estimated_wait(),
            "agents": by_state,
        }
    return result


@dataclass(frozen=True)
class QueueStats:
    """One queue's figures over a period (definitions in docs/queue-statistics.md)."""

    queue: str
    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    timed_out: int
    overflow: int
    no_agents: int
    callback_requested: int
    other_exits: int
    answered_within_sl: int
    service_level: float | None
    asa_s: float | None
    aht_s: float | None


@dataclass
class _Tally:
    """The raw sums of :func:`period_stats` before a queue's thresholds classify them: they
    add up entry by entry, so today's figures fold settled calls in and forget their records."""

    offered: int = 0
    overflow: int = 0
    refused_no_agents: int = 0
    exits: Counter[str] = field(default_factory=Counter)  # timed_out, callback, ... other
    answered_waits: array[float] = field(default_factory=lambda: array("d"))
    abandon_waits: array[float] = field(default_factory=lambda: array("d"))
    handle_times: array[float] = field(default_factory=lambda: array("d"))

    def add(self, other: _Tally) -> None:
        """Fold ``other`` into this tally."""
        self.offered += other.offered
        self.overflow += other.overflow
        self.refused_no_agents += other.refused_no_agents
        self.exits.update(other.exits)
        self.answered_waits.extend(other.answered_waits)
        self.abandon_waits.extend(other.abandon_waits)
        self.handle_times.extend(other.handle_times)


def _tally(records: Iterable[Record], queue: str, start: datetime, end: datetime) -> _Tally:
    """What the callers that entered ``queue`` in ``[start, end)`` did, from ``records``."""
    entered: dict[str, str] = {}  # entry id -> call id
    left: dict[str, dict[str, Any]] = {}
    handled: dict[str, float] = {}  # call id -> talk + hold seconds
    wrap_up: dict[str, float] = {}  # call id -> wrap-up seconds
    tally = _Tally()
    for record in records:
        if isinstance(record, AgentEvent):
            if record.kind == "state" and record.data.get("from") == "wrap_up" \
                    and record.data.get("queue") == queue:
                call_id = str(record.data.get("call_id"))
                wrap_up[call_id] = wrap_up.get(call_id, 0.0) + float(record.data["seconds"])
            continue
        if not isinstance(record, CallEvent) or record.data.get("queue") != queue:
            continue
        if record.kind == "queue_entered" and start <= record.at < end:
            entered[str(record.data["entry_id"])] = record.call_id
        elif record.kind == "queue_left":
            left[str(record.data["entry_id"])] = record.data
        elif record.kind == "queue_refused" and start <= record.at < end:
            tally.overflow += record.data.get("reason") == "overflow"
            tally.refused_no_agents += record.data.get("reason") == "no_agents"
        elif record.kind == "agent_disconnected":
            handled[record.call_id] = handled.get(record.call_id, 0.0) + float(
                record.data["talk_s"]) + float(record.data.get("hold_s", 0.0))
    tally.offered = len(entered)
    for entry_id, call_id in entered.items():
        data = left.get(entry_id)
        reason = data.get("reason") if data else None
        wait = float(data.get("wait_s", 0.0)) if data else 0.0
        if reason == "answered":
            tally.answered_waits.append(wait)
            if call_id in handled:
                tally.handle_times.append(handled[call_id] + wrap_up.get(call_id, 0.0))
        elif reason == "abandoned":
            tally.abandon_waits.append(wait)
        elif reason in ("timed_out", "callback", "no_agents"):
            tally.exits[str(reason)] += 1
        else:
            tally.exits["other"] += 1
    return tally


def _figures(queue: str, tally: _Tally, config: QueueConfig) -> QueueStats:
    """A queue's figures from its tally, with its service level and short-abandon limits."""
    waits, handle_times = tally.answered_waits, tally.handle_times
    within = sum(1 for wait in waits if wait <= config.service_level)
    short = sum(1 for wait in tally.abandon_waits if wait < config.short_abandon)
    abandoned = len(tally.abandon_waits) - short
    denominator = len(waits) + abandoned + tally.exits["timed_out"]
    return QueueStats(
        queue=queue,
        offered=tally.offered,
        answered=len(waits),
        abandoned=abandoned,
        short_abandoned=short,
        timed_out=tally.exits["timed_out"],
        overflow=tally.overflow,
        no_agents=tally.refused_no_agents + tally.exits["no_agents"],
        callback_requested=tally.exits["callback"],
        other_exits=tally.exits["other"],
        answered_within_sl=within,
        service_level=within / denominator if denominator else None,
        asa_s=sum(waits) / len(waits) if waits else None,
        aht_s=sum(handle_times) / len(handle_times) if handle_times else None,
    )


def period_stats(
    records: Iterable[Record], queue: str, config: QueueConfig, start: datetime, end: datetime
) -> QueueStats:
    """Figures of ``queue`` for the callers that entered it in ``[start, end)``."""
    return _figures(queue, _tally(records, queue, start, end), config)


QUEUE_KINDS = ("queue_entered", "queue_left", "queue_refused", "agent_disconnected")
"""The call events :func:`period_stats` reads."""


async def queue_period_stats(
    engine: AsyncEngine, queue: str, config: QueueConfig, start: datetime, end: datetime,
    horizon: timedelta,
) -> QueueStats:
    """Figures of ``queue`` for the callers that entered it in ``[start, end)``, from the
    store. A caller who entered in the period may leave the queue (and finish wrap-up) later:
    rows are read up to ``end + horizon``."""
    records = await period_records(engine, start, end + horizon, QUEUE_KINDS)
    return period_stats(records, queue, config, start, end)


Counted = CallEvent | AgentEvent
"""The records today's figures read."""


class TodayLog:
    """The log the ACD writes to: passes every record on and keeps today's queue figures
    (site time zone), computed with the same tally as any period report.

    The records a figure reads are kept per call only while the call is unsettled (waiting,
    or handled by an agent until the end of its wrap-up); then the call's tally is folded into
    its queue's and its records dropped, so memory follows the calls in progress, not the
    calls of the day (keeping every record grew the daemon by ~5 KB per call until midnight).
    One difference with a period report: a call answered twice in one queue counts each
    handling apart in AHT (a report adds them up per call).
    """

    def __init__(self, inner: InteractionLog, tz: ZoneInfo) -> None:
        self._inner = inner
        self._tz = tz
        self.day_start: datetime = _midnight(utcnow(), tz)
        self._open: dict[str, list[Counted]] = {}  # call id -> its unsettled records
        self._settled: dict[str, _Tally] = {}  # queue -> tally of its settled calls

    def append(self, record: Record) -> None:
        """Journal ``record`` and count it in today's figures."""
        self._inner.append(record)
        call_id = _counted_call(record)
        if call_id is None or not isinstance(record, CallEvent | AgentEvent):
            return
        start = _midnight(record.at, self._tz)
        if start > self.day_start:
            self.day_start = start
            self._open, self._settled = {}, {}
        records = self._open.setdefault(call_id, [])
        records.append(record)
        if _settles(record, records):
            del self._open[call_id]
            for queue in {str(r.data.get("queue")) for r in records}:
                tally = _tally(records, queue, self.day_start, self.day_start + timedelta(days=1))
                self._settled.setdefault(queue, _Tally()).add(tally)

    def figures(self, queue: str, config: QueueConfig) -> QueueStats:
        """``queue``'s figures since :attr:`day_start`."""
        tally = _Tally()
        tally.add(self._settled.get(queue, _Tally()))
        end = self.day_start + timedelta(days=1)
        tally.add(_tally((r for rs in self._open.values() for r in rs), queue, self.day_start,
                         end))
        return _figures(queue, tally, config)


def _counted_call(record: Record) -> str | None:
    """The call whose figures ``record`` counts in, or None when no figure reads it."""
    if isinstance(record, CallEvent):
        return record.call_id if record.kind in QUEUE_KINDS else None
    if isinstance(record, AgentEvent) and record.kind == "state" and "call_id" in record.data \
            and (record.data.get("from") == "wrap_up" or record.data.get("reason") == "call_ended"):
        return str(record.data["call_id"])
    return None


def _settles(record: Counted, records: list[Counted]) -> bool:
    """Whether ``record`` ends what the figures read of its call: the agent's handling is over
    (call ended without wrap-up, or wrap-up done), or the call left every queue it entered
    unanswered."""
    if isinstance(record, AgentEvent):
        return record.data.get("from") == "wrap_up" or record.data.get("to") != "wrap_up"
    if record.kind == "queue_refused":
        return not any(r.kind == "queue_entered" for r in records if isinstance(r, CallEvent))
    if record.kind != "queue_left" or record.data.get("reason") == "answered":
        return False
    kinds = [r.kind for r in records if isinstance(r, CallEvent)]
    return kinds.count("queue_entered") == kinds.count("queue_left") \
        and not any(isinstance(r, CallEvent) and r.kind == "queue_left"
                    and r.data.get("reason") == "answered" for r in records)


def _midnight(at: datetime, tz: ZoneInfo) -> datetime:
    local = at.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)
