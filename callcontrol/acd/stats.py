"""Queue statistics: live figures from the ACD, period figures from the raw event log.

Period figures are computed only from the records the ACD appends (``queue_entered``,
``queue_left``, ``queue_refused``, ``agent_disconnected`` call events and the agents' ``state``
events), with the definitions written in ``docs/queue-statistics.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
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


def period_stats(
    records: Iterable[Record], queue: str, config: QueueConfig, start: datetime, end: datetime
) -> QueueStats:
    """Figures of ``queue`` for the callers that entered it in ``[start, end)``."""
    entered: dict[str, str] = {}  # entry id -> call id
    left: dict[str, dict[str, Any]] = {}
    handled: dict[str, float] = {}  # call id -> talk + hold seconds
    wrap_up: dict[str, float] = {}  # call id -> wrap-up seconds
    overflow = no_agents = 0
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
            overflow += record.data.get("reason") == "overflow"
            no_agents += record.data.get("reason") == "no_agents"
        elif record.kind == "agent_disconnected":
            handled[record.call_id] = handled.get(record.call_id, 0.0) + float(
                record.data["talk_s"]) + float(record.data.get("hold_s", 0.0))
    counts = {"answered": 0, "abandoned": 0, "short": 0, "timed_out": 0, "callback": 0,
              "no_agents": 0, "other": 0}
    waits: list[float] = []
    handle_times: list[float] = []
    within = 0
    for entry_id, call_id in entered.items():
        data = left.get(entry_id)
        reason = data.get("reason") if data else None
        wait = float(data.get("wait_s", 0.0)) if data else 0.0
        if reason == "answered":
            counts["answered"] += 1
            waits.append(wait)
            within += wait <= config.service_level
            if call_id in handled:
                handle_times.append(handled[call_id] + wrap_up.get(call_id, 0.0))
        elif reason == "abandoned":
            counts["short" if wait < config.short_abandon else "abandoned"] += 1
        elif reason in ("timed_out", "callback", "no_agents"):
            counts[str(reason)] += 1
        else:
            counts["other"] += 1
    denominator = counts["answered"] + counts["abandoned"] + counts["timed_out"]
    return QueueStats(
        queue=queue,
        offered=len(entered),
        answered=counts["answered"],
        abandoned=counts["abandoned"],
        short_abandoned=counts["short"],
        timed_out=counts["timed_out"],
        overflow=overflow,
        no_agents=no_agents + counts["no_agents"],
        callback_requested=counts["callback"],
        other_exits=counts["other"],
        answered_within_sl=within,
        service_level=within / denominator if denominator else None,
        asa_s=sum(waits) / len(waits) if waits else None,
        aht_s=sum(handle_times) / len(handle_times) if handle_times else None,
    )


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


# The call events period_stats reads; of the agent events, only the end of a wrap-up.
_COUNTED_CALL_KINDS = frozenset({"queue_entered", "queue_left", "queue_refused",
                                 "agent_disconnected"})


def counted(record: Record) -> bool:
    """True when :func:`period_stats` can use ``record`` (the others change no figure)."""
    if isinstance(record, CallEvent):
        return record.kind in _COUNTED_CALL_KINDS
    return isinstance(record, AgentEvent) and record.kind == "state" \
        and record.data.get("from") == "wrap_up"


class TodayLog:
    """The log the ACD writes to: passes every record on and keeps the ACD's records of the
    current day (site time zone) that count (:func:`counted`: about a third of them), from
    which :func:`queues_json` computes the day's figures with the same function as any
    period report."""

    def __init__(self, inner: InteractionLog, tz: ZoneInfo) -> None:
        self._inner = inner
        self._tz = tz
        self.day_start: datetime = _midnight(utcnow(), tz)
        self.records: list[Record] = []

    def append(self, record: Record) -> None:
        """Journal ``record`` and keep it for today's figures."""
        self._inner.append(record)
        if not counted(record):
            return
        start = _midnight(record.at, self._tz)
        if start > self.day_start:
            self.day_start = start
            self.records = []
        self.records.append(record)


def _midnight(at: datetime, tz: ZoneInfo) -> datetime:
    local = at.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def queues_json(core: Acd, log: TodayLog) -> list[dict[str, Any]]:
    """Every queue: live figures and today's figures (docs/queue-statistics.md)."""
    live = live_stats(core)
    start = log.day_start
    end = start + timedelta(days=1)
    result = []
    for name, line in core.lines.items():
        today = period_stats(log.records, name, line.config, start, end)
        body = asdict(today)
        body.pop("queue")
        result.append({"name": name, "strategy": line.config.strategy, **live[name],
                       "today": {"since": start.isoformat(), **body}})
    return result
