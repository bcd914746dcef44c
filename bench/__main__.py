"""``python -m bench`` (``make bench``): run both sides of the load bench, write the results.

Knobs (environment, or the same names as flags, e.g. ``--steps 5,10,20``):
  BENCH_STEPS          calls/s of each step, comma-separated (default 2,5)
  BENCH_STEP_SECONDS   how long each step places calls (default 20)
  BENCH_TALK_SECONDS   how long a caller stays after pressing 1 (default 5)
  BENCH_AGENTS         agent headsets (default: enough for the top step's concurrent calls)
  BENCH_SIDES          which sides, in order (default dialplan,callcontrol)
  BENCH_OUT            results folder (default bench/results)
  BENCH_KEEP           1: keep the work folder (logs, sipp traces, the daemon's database)
The full ramp of DECISIONS.md: BENCH_STEPS=5,10,20,30,35,40 BENCH_STEP_SECONDS=60
BENCH_TALK_SECONDS=8 BENCH_AGENTS=300.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.daemon import BenchDaemon
from bench.measure import AmiRecorder
from bench.pbx import BenchPbx, SippAgents, start_bench_pbx
from bench.sides import AMI_EVENTS, StepPlan, callcontrol_step, dialplan_step
from callcontrol.config import resolve_secret

SIDES = ("dialplan", "callcontrol")


def parse_args(argv: list[str] | None, env: dict[str, str]) -> argparse.Namespace:
    """Flags over ``BENCH_*`` environment variables over defaults."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default=env.get("BENCH_STEPS", "2,5"))
    parser.add_argument("--step-seconds", type=float,
                        default=float(env.get("BENCH_STEP_SECONDS", "20")))
    parser.add_argument("--talk-seconds", type=float,
                        default=float(env.get("BENCH_TALK_SECONDS", "5")))
    parser.add_argument("--agents", type=int, default=int(env.get("BENCH_AGENTS", "0")))
    parser.add_argument("--sides", default=env.get("BENCH_SIDES", ",".join(SIDES)))
    parser.add_argument("--out", type=Path, default=Path(env.get("BENCH_OUT", "bench/results")))
    parser.add_argument("--keep", action="store_true", default=env.get("BENCH_KEEP") == "1")
    args = parser.parse_args(argv)
    args.steps = [float(s) for s in str(args.steps).split(",") if s.strip()]
    args.sides = [s.strip() for s in str(args.sides).split(",") if s.strip()]
    unknown = set(args.sides) - set(SIDES)
    if unknown or not args.steps:
        parser.error(f"unknown sides {sorted(unknown)} or no steps")
    if args.agents <= 0:
        # concurrent calls ~ cps x (answer + prompt until the digit + talk), plus a margin
        args.agents = math.ceil(max(args.steps) * (args.talk_seconds + 3) * 1.3) + 2
    return args


async def run_side(name: str, pbx: BenchPbx, plans: list[StepPlan],
                   work: Path) -> dict[str, Any]:
    """All steps of one side; an error ends the side and is reported in it."""
    steps: list[dict[str, Any]] = []
    ast = pbx.config.asterisk
    ami = AmiRecorder(ast.ami.host, ast.ami.port, ast.ami.user,
                      resolve_secret(pbx.config, ast.ami.password).get_secret_value(),
                      AMI_EVENTS)
    daemon = BenchDaemon(pbx) if name == "callcontrol" else None
    try:
        if daemon is not None:
            await daemon.start()
        else:
            await ami.start()
        for index, plan in enumerate(plans):
            folder = work / f"{name}-step{index}"
            print(f"bench: {name}: {plan.cps:g} calls/s for {plan.seconds:g} s", file=sys.stderr)
            if daemon is not None:
                step = await callcontrol_step(pbx, daemon.pid, work / "callcontrol.db", plan,
                                              folder)
            else:
                step = await dialplan_step(pbx, ami, plan, folder)
            print(f"bench: {name}: {step['completed']}/{step['attempted']} completed, "
                  f"peak {step['concurrent_peak']} concurrent", file=sys.stderr)
            steps.append(step)
        return report.side(steps)
    except Exception as exc:  # reported in the result: the other side still runs
        detail = f"{type(exc).__name__}: {exc}"
        if daemon is not None:
            detail += f" (daemon log: {daemon.log_tail()})"
        print(f"bench: {name} side failed: {detail}", file=sys.stderr)
        return report.side(steps, error=detail)
    finally:
        await ami.close()
        if daemon is not None:
            await daemon.stop()


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start the bench Asterisk and agents, run the sides, return the result document."""
    started = datetime.now(UTC)
    plans = [StepPlan(cps, args.step_seconds, args.talk_seconds) for cps in args.steps]
    pbx = await start_bench_pbx(work, args.agents)
    agents = SippAgents(pbx)
    try:
        version = (await pbx.instance.cli("core show version")).split()[1]
        await agents.start()
        sides = {name: await run_side(name, pbx, plans, work) for name in args.sides}
    finally:
        await agents.stop()
        await pbx.stop()
    settings = {"call_seconds": args.talk_seconds, "agents": args.agents,
                "step_seconds": args.step_seconds, "steps_cps": args.steps,
                "agents_how": "one sipp UAS registers every agent headset and answers at once",
                "callers": "sipp UAC: answer, digit 1 (RFC 2833) 1.5 s after the answer, "
                           "talk call_seconds, BYE"}
    return report.build(started, version, settings, sides)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print the result file's path. Exit 1 when a side reported an error."""
    args = parse_args(argv, dict(os.environ))
    work = Path(tempfile.mkdtemp(prefix="callcontrol-bench-"))
    try:
        result = asyncio.run(bench(args, work))
    finally:
        if args.keep:
            print(f"bench: work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    path = report.write(result, args.out)
    print(path)
    if result.get("chart_skipped"):
        print(f"bench: no chart: {result['chart_skipped']}", file=sys.stderr)
    return 1 if any("error" in s for s in result["sides"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
