"""Match every call sipp placed to the daemon's rows and count, per fault.

Each call is put in the phase of the last fault its life overlapped (from the fault's injection
until the service was back), else in the phase during which sipp started it: a call started
late in one phase and cut by the next fault counts against the fault that cut it. Each call is
in exactly one class (so the classes of a phase add up to its attempted calls):

    <outcome>             it has a final row (``ended_at`` and ``outcome``): the outcome; a
                          call the dialplan fallback answered while the daemon was not
                          connected has one too, imported from the fallback ledger
                          (callcontrol/fallback_ledger.py): ``failed`` (or ``overflow``),
                          reason "daemon unavailable: handled by the dialplan fallback"
    open                  it has a row, but the row was never closed            -> defect
    no_row_missing        Asterisk handed it to the Stasis app (and not to the fallback
                          because the app was down), yet no row exists          -> defect
    no_row_app_down       the fallback answered it while the daemon was not connected,
                          yet the ledger import gave it no row                  -> defect
    no_row_not_reached    it never reached Asterisk's dialplan (Asterisk was down)

``doubled`` counts Call-IDs with more than one row and timeline records stored more than once
(by ``record_id``): the other defect. ``conflicting_closes`` (a call whose timeline was
ended twice, by its own task and by recovery) is listed among the defects for a look, but is
not counted as one: its row holds the first close. ``reasons`` counts the close reasons of
rows that did not end ``completed``. A call is ``failed`` when the caller's sipp did not see it
through or its class is not ``completed``; ``failed_during_fault`` are the failed calls whose
life overlapped the fault (from its injection until the service was back).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from callcontrol.store.db import session_factory
from callcontrol.store.queries import call_to_json, event_to_json
from callcontrol.store.tables import CallEventRow, CallRow
from faults.inject import FaultWindow
from faults.stasis import StasisEntry
from faults.stream import SippCall

DEFECT_CLASSES = ("open", "no_row_missing", "no_row_app_down")
TERMINAL_EVENTS = ("call_ended", "recovered")


@dataclass(frozen=True)
class Phase:
    """The part of the stream around one fault (epoch seconds, end excluded)."""

    start: float
    end: float
    fault: FaultWindow


@dataclass
class StoreView:
    """What the database holds after the run."""

    rows: dict[str, list[CallRow]]  # by SIP Call-ID (rows without one under "")
    events: dict[str, list[CallEventRow]]  # by call_id
    doubled_record_ids: list[str]


async def read_store(engine: AsyncEngine) -> StoreView:
    """Every call row and timeline entry, and record ids stored more than once."""
    async with session_factory(engine)() as session:
        calls = (await session.execute(
            sa.select(CallRow).order_by(col(CallRow.started_at)))).scalars()
        events = (await session.execute(
            sa.select(CallEventRow).order_by(col(CallEventRow.id)))).scalars()
        record_id = col(CallEventRow.record_id)
        doubled = (await session.execute(
            sa.select(record_id).group_by(record_id).having(sa.func.count() > 1))).scalars()
        view = StoreView({}, {}, list(doubled))
        for row in calls:
            view.rows.setdefault(row.sip_call_id or "", []).append(row)
        for event in events:
            view.events.setdefault(event.call_id, []).append(event)
    return view


def classify(call: SippCall, rows: list[CallRow], stasis: list[StasisEntry]) -> str:
    """The class of one call (see the module docstring)."""
    if rows:
        first = rows[0]
        return first.outcome if first.ended_at is not None and first.outcome else "open"
    if not stasis:
        return "no_row_not_reached"
    if all(e.fallback_status == "FAILED" for e in stasis):
        return "no_row_app_down"
    return "no_row_missing"


def tally(calls: dict[str, SippCall], phases: list[Phase], store: StoreView,
          stasis: dict[str, list[StasisEntry]], daemon_log: Path) -> dict[str, Any]:
    """The ``faults`` and ``totals`` parts of the result, and every defect in detail."""
    per_phase: list[dict[str, Any]] = [_empty(p) for p in phases]
    defects: list[dict[str, Any]] = []
    for call in sorted(calls.values(), key=lambda c: c.started):
        index = _phase_of(call, phases)
        phase, out = phases[index], per_phase[index]
        rows = store.rows.get(call.call_id, [])
        kind = classify(call, rows, stasis.get(call.call_id, []))
        out["attempted"] += 1
        out["classes"][kind] += 1
        if rows and kind != "completed":
            out["reasons"][f"{kind}: {rows[0].close_reason or rows[0].hangup_cause}"] += 1
        out["sipp"]["completed" if call.completed else "failed"] += 1
        failed = not call.completed or kind != "completed"
        overlaps = _overlaps(call, phase.fault)
        out["failed"] += failed
        out["during_fault"] += overlaps
        out["failed_during_fault"] += failed and overlaps
        doubled = len(rows) > 1
        conflicting = any(_doubled_terminal(store, r) for r in rows)
        out["doubled"] += doubled
        out["without_final_row"] += kind in DEFECT_CLASSES
        out["rows_without_outcome"] += sum(1 for r in rows if r.ended_at is None or not r.outcome)
        if stasis.get(call.call_id):
            out["asterisk"]["reached_hotline"] += 1
            out["asterisk"]["with_one_row"] += len(rows) == 1
            out["asterisk"]["without_exactly_one_row"] += len(rows) != 1
        if kind in DEFECT_CLASSES or doubled or conflicting:
            defects.append(_defect(call, kind, rows, store, stasis, daemon_log,
                                   phase.fault.name, doubled))
    known = set(calls)
    unmatched = [r for sip, rows in store.rows.items() if sip not in known for r in rows]
    totals: dict[str, Any] = {
        "attempted": sum(p["attempted"] for p in per_phase),
        "without_final_row": sum(p["without_final_row"] for p in per_phase),
        "doubled": sum(p["doubled"] for p in per_phase) + len(store.doubled_record_ids),
        "doubled_record_ids": store.doubled_record_ids,
        "conflicting_closes": sum(1 for rows in store.rows.values() for r in rows
                                  if _doubled_terminal(store, r)),
        "rows_without_outcome": sum(p["rows_without_outcome"] for p in per_phase),
        "reached_hotline": sum(p["asterisk"]["reached_hotline"] for p in per_phase),
        "reached_without_exactly_one_row": sum(p["asterisk"]["without_exactly_one_row"]
                                               for p in per_phase),
        "rows_not_placed_by_sipp": len(unmatched),
        "open_rows_in_db": sum(1 for rows in store.rows.values() for r in rows
                               if r.ended_at is None),
    }
    for out in per_phase:
        out["classes"] = dict(sorted(out["classes"].items()))
        out["reasons"] = dict(sorted(out["reasons"].items()))
    return {"faults": per_phase, "totals": totals, "defects": defects}


def _empty(phase: Phase) -> dict[str, Any]:
    return {
        "fault": phase.fault.to_json(),
        "phase_s": round(phase.end - phase.start, 1),
        "attempted": 0, "sipp": {"completed": 0, "failed": 0}, "classes": Counter(),
        "reasons": Counter(),
        "failed": 0, "during_fault": 0, "failed_during_fault": 0,
        "without_final_row": 0, "rows_without_outcome": 0, "doubled": 0,
        "asterisk": {"reached_hotline": 0, "with_one_row": 0, "without_exactly_one_row": 0},
    }


def _phase_of(call: SippCall, phases: list[Phase]) -> int:
    hit = [index for index, phase in enumerate(phases) if _overlaps(call, phase.fault)]
    if hit:
        return hit[-1]
    for index, phase in enumerate(phases):
        if call.started < phase.end:
            return index
    return len(phases) - 1


def _overlaps(call: SippCall, fault: FaultWindow) -> bool:
    back = fault.recovered if fault.recovered is not None else float("inf")
    return call.started <= back and call.last >= fault.started


def _doubled_terminal(store: StoreView, row: CallRow) -> bool:
    # ``recovered`` closes a call only when it carries an outcome; an adopted call logs
    # ``recovered`` and ends later with its own ``call_ended``.
    kinds = Counter(
        e.kind for e in store.events.get(row.call_id, [])
        if e.kind != "recovered" or "outcome" in (e.data or {})
    )
    return sum(kinds[k] for k in TERMINAL_EVENTS) > 1


def _defect(call: SippCall, kind: str, rows: list[CallRow], store: StoreView,
            stasis: dict[str, list[StasisEntry]], daemon_log: Path, fault: str,
            doubled: bool) -> dict[str, Any]:
    """One call without a final row or with doubled records: everything known about it."""
    keys = {call.call_id} | {r.call_id for r in rows} | {r.channel_id for r in rows if r.channel_id}
    keys |= {e.uniqueid for e in stasis.get(call.call_id, [])}
    return {
        "sip_call_id": call.call_id,
        "class": kind,
        "doubled": doubled,
        "fault": fault,
        "sipp": {"started": call.started, "last": call.last, "invite_status": call.invite_status,
                 "completed": call.completed, "far_end_bye": call.far_end_bye},
        "stasis": [{"uniqueid": e.uniqueid, "at": e.at, "fallback": e.fallback_status}
                   for e in stasis.get(call.call_id, [])],
        "rows": [{**call_to_json(r),
                  "timeline": [event_to_json(e) for e in store.events.get(r.call_id, [])]}
                 for r in rows],
        "daemon_log": log_lines(daemon_log, keys),
    }


def log_lines(path: Path, keys: set[str], limit: int = 60) -> list[str]:
    """The daemon log's lines naming any of ``keys`` (at most ``limit``)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    pattern = re.compile("|".join(re.escape(k) for k in sorted(keys) if k))
    return [line for line in text.splitlines() if pattern.search(line)][:limit]
