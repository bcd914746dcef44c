"""TodayLog: today's figures equal a period report over the same records, and the records of
settled calls are not kept (memory follows the calls in progress)."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from callcontrol.acd.stats import TodayLog, period_stats
from callcontrol.clock import utcnow
from callcontrol.config import QueueConfig
from callcontrol.store.records import AgentEvent, CallEvent, CallOpened, Record


class Sink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> None:
        self.records.append(record)


def one_call(n: int, rng: random.Random) -> list[Record]:
    """The ACD's records of one call in queue ``q``, with one of the ways it can end."""
    call, entry, agent = f"c{n}", f"e{n}", f"a{n % 7}"
    at = utcnow()
    wait = round(rng.uniform(0, 40), 3)

    def ev(kind: str, **data: object) -> CallEvent:
        return CallEvent(call_id=call, kind=kind, data={"queue": "q", **data}, at=at)

    def state(frm: str, to: str, reason: str, seconds: float) -> AgentEvent:
        return AgentEvent(agent_id=agent, kind="state", at=at, data={
            "from": frm, "to": to, "reason": reason, "seconds": seconds, "call_id": call,
            "queue": "q"})

    way = rng.choice(["answered", "answered_wrap", "abandoned", "timed_out", "overflow",
                      "waiting", "talking"])
    if way == "overflow":
        return [ev("queue_refused", reason="overflow")]
    records: list[Record] = [CallOpened(call_id=call, channel_id=f"ch{n}"),
                             ev("queue_entered", entry_id=entry)]
    if way == "waiting":
        return records
    if way in ("abandoned", "timed_out"):
        return [*records, ev("queue_left", entry_id=entry, reason=way, wait_s=wait)]
    records += [state("available", "ringing", "offered", 1.0),
                ev("queue_left", entry_id=entry, reason="answered", wait_s=wait),
                state("ringing", "on_call", "answered", 0.5),
                ev("agent_connected", agent_id=agent)]
    if way == "talking":
        return records
    talk = round(rng.uniform(5, 300), 3)
    records.append(ev("agent_disconnected", agent_id=agent, talk_s=talk, hold_s=2.0))
    if way == "answered":
        return [*records, state("on_call", "available", "call_ended", talk)]
    return [*records, state("on_call", "wrap_up", "call_ended", talk),
            state("wrap_up", "available", "wrap_up_done", 15.0)]


def test_today_figures_equal_a_period_report_and_forget_settled_calls() -> None:
    rng = random.Random(7)
    calls = [one_call(n, rng) for n in range(400)]
    sink = Sink()
    log = TodayLog(sink, ZoneInfo("UTC"))
    # interleave the calls' records as they would arrive
    cursors = [0] * len(calls)
    while any(c < len(rs) for c, rs in zip(cursors, calls, strict=True)):
        i = rng.choice([i for i, rs in enumerate(calls) if cursors[i] < len(rs)])
        log.append(calls[i][cursors[i]])
        cursors[i] += 1
    config = QueueConfig(service_level=20, short_abandon=5)
    start = log.day_start
    report = period_stats(sink.records, "q", config, start, start + timedelta(days=1))
    # equal but for the order floats were summed in
    assert asdict(log.figures("q", config)) == pytest.approx(asdict(report))
    assert report.answered > 50 and report.abandoned + report.short_abandoned > 20
    assert len(sink.records) == sum(len(rs) for rs in calls)  # every record passed on
    # only calls still waiting or talking keep records
    unsettled = {rs[-1].call_id for rs in calls  # type: ignore[attr-defined]
                 if isinstance(rs[-1], CallEvent) and rs[-1].kind in ("queue_entered",
                                                                      "agent_connected")}
    assert set(log._open) == unsettled
    assert log.figures("q", config).offered == sum(
        1 for rs in calls for r in rs if isinstance(r, CallEvent) and r.kind == "queue_entered")
