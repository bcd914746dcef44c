"""One step of calls on either side: run the callers, measure, summarise.

Both sides place the same calls (``bench/sipp/caller.xml``) to the same agents (sipp UAS
headsets that talk ``talk_seconds`` and hang up):

``dialplan``: caller ``dpcaller`` -> context ``callcontrol-bench`` (Background, WaitExten,
Queue() over app_queue with every agent a static member).
``callcontrol``: caller ``benchcaller`` -> Stasis -> the daemon's ``bench`` flow and ACD.

Measured the same way on both sides: a call is completed when sipp got its BYE after the
agent's talk time *and* AMI saw its channel bridged with an agent; latencies are AMI event
timestamps (digit received -> hold music started, -> bridged with an agent); the Asterisk-side
count of calls is the caller channels AMI announced. On the callcontrol side every such channel
must have exactly one row in the daemon's store, closed with an outcome (``db_rows``): a
mismatch fails the step. ``daemon_view`` gives the same latencies from the daemon's own
timeline (when it handled the ARI events).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.callers import CallerRun, run_callers
from bench.measure import AmiRecorder, CallMarks, ProcessSampler, calls_from_ami, percentiles
from bench.pbx import EXTENSION, BenchPbx

AGENT_PREFIX = "bench-a"


@dataclass(frozen=True)
class StepPlan:
    """One step: ``cps`` new calls per second for ``seconds``; agents talk ``talk_seconds``."""

    cps: float
    seconds: float
    talk_seconds: float

    @property
    def calls(self) -> int:
        """Calls placed in the step."""
        return max(1, round(self.cps * self.seconds))


@dataclass
class StepRig:
    """What a step runs on: the PBX, the AMI observer and the processes it measures."""

    pbx: BenchPbx
    ami: AmiRecorder
    agent_pids: list[int]
    daemon_pid: int | None = None
    db: Path | None = None  # the daemon's SQLite store (callcontrol side)


async def wait_idle(pbx: BenchPbx, time_limit: float = 20.0) -> bool:
    """Wait until Asterisk has no channel left; False when some are still up at the limit."""
    deadline = time.monotonic() + time_limit
    while time.monotonic() < deadline:
        out = await pbx.instance.cli("core show channels count")
        if "0 active channels" in out:
            return True
        await asyncio.sleep(0.5)
    return False


async def run_step(rig: StepRig, plan: StepPlan, workdir: Path) -> dict[str, Any]:
    """One step on the side ``rig`` describes (callcontrol when it has a daemon)."""
    daemon_side = rig.daemon_pid is not None
    await wait_idle(rig.pbx, plan.talk_seconds + 30)
    before = set(_call_ids(rig.db)) if rig.db is not None else set()
    rig.ami.take()
    sampler = ProcessSampler(
        {"daemon": (rig.daemon_pid,) if rig.daemon_pid else (),
         "asterisk": (rig.pbx.instance.pid,) if rig.pbx.instance.pid else (),
         "sipp": tuple(rig.agent_pids)},
        warm_up=min(plan.talk_seconds + 3, plan.seconds / 2),
    )
    caller = rig.pbx.caller if daemon_side else rig.pbx.dialplan_caller

    def spawned(pid: int) -> None:
        sampler.pids["sipp"] = (*sampler.pids["sipp"], pid)
        sampler.start()
        asyncio.get_running_loop().call_later(plan.seconds, sampler.mark_end)

    run = await run_callers(rig.pbx, caller, EXTENSION, plan.calls, plan.cps,
                            plan.talk_seconds, workdir, spawned)
    cpu, rss = await sampler.stop()
    idle = await wait_idle(rig.pbx, plan.talk_seconds + 30)
    await asyncio.sleep(0.5)  # the last AMI events of the step
    marks = calls_from_ami(rig.ami.take(), caller.username, AGENT_PREFIX)
    rows = daemon_view = None
    if rig.db is not None:
        uniqueids = {m.uniqueid for m in marks}
        rows, daemon_view = await asyncio.to_thread(store_check, rig.db, before, uniqueids,
                                                    run.started)
    return step_record(plan, run, marks, cpu, rss, rows, daemon_view, idle)


def step_record(plan: StepPlan, run: CallerRun, marks: list[CallMarks],
                cpu: dict[str, float | None], rss: dict[str, float | None],
                rows: dict[str, Any] | None, daemon_view: dict[str, Any] | None,
                idle: bool) -> dict[str, Any]:
    """The step as DECISIONS.md "Bench results" shapes it, with the bench's extra fields."""
    reached = [m for m in marks if m.agent is not None]
    completed = min(len(run.ended_well), run.stats.successful, len(reached))
    return {
        "cps": plan.cps,
        "concurrent_peak": run.concurrent_peak,
        "attempted": plan.calls,
        "completed": completed,
        "failed": plan.calls - completed,
        "asterisk_calls": len(marks),
        "reached_agent": len(reached),
        "sipp": {"successful": run.stats.successful, "failed": run.stats.failed,
                 "exit": run.returncode, "invite_response_ms": run.stats.response_time_ms},
        "cpu_pct_one_core": {"daemon": cpu["daemon"], "asterisk": cpu["asterisk"]},
        "load_generator_cpu_pct": cpu["sipp"],
        "peak_rss_mb": {"daemon": rss["daemon"], "asterisk": rss["asterisk"]},
        "digit_to_prompt_ms": percentiles((m.prompt - m.digit) * 1000 for m in marks
                                          if m.prompt is not None and m.digit is not None),
        "digit_to_agent_ms": percentiles((m.agent - m.digit) * 1000 for m in marks
                                         if m.agent is not None and m.digit is not None),
        "db_rows": rows,
        "daemon_view": daemon_view,
        "drained": idle,
    }


def rows_mismatch(step: dict[str, Any]) -> int:
    """Caller channels without exactly one closed row (0 on the dialplan side)."""
    rows = step.get("db_rows")
    if not rows:
        return 0
    return int(rows["missing"] + rows["doubled"] + rows["extra"] + rows["open"])


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def _call_ids(db: Path) -> list[str]:
    with _connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT call_id FROM calls")]


def _when(text: str) -> float:
    value = datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def store_check(db: Path, before: set[str], uniqueids: set[str], sip_ids: frozenset[str],
                time_limit: float = 30.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The step's rows against the caller channels Asterisk announced (waiting up to
    ``time_limit`` for the store to catch up), and the daemon's own latencies."""
    deadline = time.monotonic() + time_limit
    while True:
        with _connect(db) as conn:
            found = conn.execute(
                "SELECT call_id, channel_id, sip_call_id, ended_at, outcome, direction"
                " FROM calls").fetchall()
        new = [r for r in found if r[0] not in before and r[5] == "inbound"]
        per_channel = Counter(r[1] for r in new)
        closed = all(r[3] and r[4] for r in new)
        if (closed and uniqueids <= set(per_channel)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    call_ids = [r[0] for r in new]
    events, to_queue, to_agent = _timeline(db, call_ids)
    rows = {
        "calls": len(new),
        "events": events,
        "events_per_call": round(events / len(new), 1) if new else None,
        "asterisk_calls": len(uniqueids),
        "missing": sum(1 for u in uniqueids if per_channel[u] == 0),
        "doubled": sum(c - 1 for c in per_channel.values() if c > 1),
        "extra": sum(c for ch, c in per_channel.items() if ch not in uniqueids),
        "open": sum(1 for r in new if not (r[3] and r[4])),
        "sip_call_ids_without_row": len(sip_ids - {r[2] for r in new}),
        "outcomes": dict(Counter(r[4] or "none" for r in new)),
    }
    view = {"digit_to_queue_ms": percentiles(to_queue),
            "digit_to_agent_ms": percentiles(to_agent)}
    return rows, view


def _timeline(db: Path, call_ids: list[str]) -> tuple[int, list[float], list[float]]:
    """Timeline rows of ``call_ids``; digit -> queue entered / agent connected (ms) per call."""
    firsts: dict[str, dict[str, float]] = {cid: {} for cid in call_ids}
    events = 0
    with _connect(db) as conn:
        for start in range(0, len(call_ids), 500):
            chunk = call_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for cid, kind, at in conn.execute(
                f"SELECT call_id, kind, at FROM call_events WHERE call_id IN ({marks})", chunk
            ):
                events += 1
                key = "digit" if kind in ("barge_in", "digits") else kind
                when = _when(at)
                seen = firsts[cid].get(key)
                firsts[cid][key] = when if seen is None else min(seen, when)
    to_queue, to_agent = [], []
    for marks_of in firsts.values():
        digit = marks_of.get("digit")
        if digit is None:
            continue
        if "queue_entered" in marks_of:
            to_queue.append((marks_of["queue_entered"] - digit) * 1000)
        if "agent_connected" in marks_of:
            to_agent.append((marks_of["agent_connected"] - digit) * 1000)
    return events, to_queue, to_agent
