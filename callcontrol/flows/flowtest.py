"""``callcontrol flows test``: flow test cases kept beside the flows, run in the simulator.

A case file (``ivr_flows/tests/NAME.yaml``) names a flow of the folder above it and lists
cases; each runs :func:`~callcontrol.flows.simulate.run_simulation` and compares::

    flow: hotline
    cases:
      - name: VIP customer goes to the VIP queue
        digits: "1 123456#"              # caller script (see callcontrol.flows.simulate)
        at: "2026-03-02T10:00:00+01:00"  # the clock (default: Monday 2026-03-02 10:00 UTC)
        vars: {tier: gold}               # variables set before the start
        http:                            # http fixtures (see simulate.HttpFixture)
          - {url: /customers/123456, json: {tier: vip}}
        queue_exits: [after]             # how queue steps end, in order (default: after)
        dial_results: [next]             # how dial steps end, in order (default: next)
        path: [welcome, office_hours, main_menu, account, lookup, vip_check, vip_queue]
        variables: {account: "123456"}   # expected values (only the names listed)
        outcome: completed               # optional

``path`` must match exactly; ``variables`` is a subset check.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO

from ruamel.yaml import YAML

from callcontrol.flows.model import Schedule as ScheduleModel
from callcontrol.flows.registry import load_folder
from callcontrol.flows.simulate import FixtureHttp, run_simulation

CASE_KEYS = frozenset(
    {
        "name",
        "digits",
        "at",
        "vars",
        "http",
        "queue_exits",
        "dial_results",
        "path",
        "variables",
        "outcome",
    }
)


@dataclass(frozen=True)
class CaseResult:
    """One case: passed or not, and the differences found."""

    file: str
    name: str
    passed: bool
    problems: tuple[str, ...] = ()


def _clock(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"'at' needs a UTC offset: {value!r}")
    return moment


async def _run_case(
    file: Path, flow: str, case: dict[str, Any], flows: Any, context: SimulationContext
) -> CaseResult:
    name = str(case.get("name", "?"))
    unknown = set(case) - CASE_KEYS
    if unknown:
        return CaseResult(str(file), name, False, (f"unknown keys {sorted(unknown)}",))
    try:
        result = await run_simulation(
            flow,
            flows,
            digits=str(case.get("digits", "")),
            variables=case.get("vars") or {},
            http=FixtureHttp.from_data(case.get("http")),
            now=_clock(case.get("at")),
            queue_exits=case.get("queue_exits") or (),
            dial_results=case.get("dial_results") or (),
            schedules=context.schedules,
            site_timezone=context.site_timezone,
        )
    except (ValueError, TypeError) as exc:
        return CaseResult(str(file), name, False, (f"cannot run: {exc}",))
    problems = []
    expected_path = case.get("path")
    if expected_path is not None and list(result.path) != list(expected_path):
        problems.append(f"path: expected {list(expected_path)}, got {list(result.path)}")
    for key, value in (case.get("variables") or {}).items():
        if key not in result.variables:
            problems.append(f"variable {key}: expected {value!r}, not set")
        elif result.variables[key] != value:
            problems.append(f"variable {key}: expected {value!r}, got {result.variables[key]!r}")
    if "outcome" in case and case["outcome"] != result.outcome:
        problems.append(f"outcome: expected {case['outcome']!r}, got {result.outcome!r}")
    return CaseResult(str(file), name, not problems, tuple(problems))


@dataclass(frozen=True)
class SimulationContext:
    """What the daemon's config gives the engine: shared schedules and the site time zone."""

    schedules: Mapping[str, ScheduleModel] = field(default_factory=dict)
    site_timezone: tzinfo = UTC


def run_case_file(
    file: Path, context: SimulationContext | None = None
) -> list[CaseResult]:
    """Run every case of one case file against the flows of the folder above it."""
    context = context or SimulationContext()
    data = YAML(typ="safe").load(file.read_text())
    if not isinstance(data, dict) or "flow" not in data:
        return [CaseResult(str(file), "(file)", False, ("a case file needs 'flow' and 'cases'",))]
    flows, refused = load_folder(file.parent.parent)
    flow = str(data["flow"])
    if flow not in flows:
        detail = [f for findings in refused.values() for f in findings]
        return [CaseResult(str(file), "(file)", False, (f"flow {flow!r} is not loadable", *detail))]
    return [
        asyncio.run(_run_case(file, flow, dict(case), flows, context))
        for case in data.get("cases") or []
    ]


def case_files(paths: Sequence[Path]) -> list[Path]:
    """Case files named by ``paths`` (folders: their ``*.yaml``)."""
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return out


def flowtest_main(
    paths: Sequence[Path], out: TextIO | None = None, context: SimulationContext | None = None
) -> int:
    """Run the cases of ``paths`` (default ``ivr_flows/tests``); print one line per case and a
    summary; return 1 when a case fails or none was found."""
    out = out or sys.stdout
    files = case_files(list(paths) or [Path("ivr_flows/tests")])
    results = [r for file in files for r in run_case_file(file, context)]
    for result in results:
        print(f"{'PASS' if result.passed else 'FAIL'} {result.file}: {result.name}", file=out)
        for problem in result.problems:
            print(f"    {problem}", file=out)
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed", file=out)
    return 1 if failed or not results else 0
