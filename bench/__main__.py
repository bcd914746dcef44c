"""``python -m bench`` (``make bench``): run both sides of the load bench, write the results.

Knobs (environment, or the same names as flags, e.g. ``--steps 5,10,20``):
  BENCH_STEPS          calls/s of each step, comma-separated (default 5,10)
  BENCH_STEP_SECONDS   how long each step places calls (default 20)
  BENCH_TALK_SECONDS   how long an agent talks before it hangs up (default 8)
  BENCH_AGENTS         agent headsets (default: enough for the top step, in blocks of 100)
  BENCH_AGENTS_PER_UAS agents per sipp UAS process (default 100)
  BENCH_SIDES          which sides, in order (default dialplan,callcontrol)
  BENCH_STOP_FAIL_PCT  a side stops its ramp after a step failing more than this (default 5)
  BENCH_OUT            results folder (default bench/results)
  BENCH_KEEP           1: keep the work folder (logs, sipp traces, the daemon's database)
The full ramp: BENCH_STEPS=5,10,20,30,35,40 BENCH_STEP_SECONDS=50 BENCH_TALK_SECONDS=8.3.
Exit 1 when a side could not run or a step's rows do not match Asterisk's calls.
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
from bench.measure import CALL_EVENTS, AmiRecorder
from bench.pbx import AGENTS_PER_UAS, BenchPbx, SippAgents, start_bench_pbx
from bench.sides import StepPlan, StepRig, rows_mismatch, run_step
from callcontrol.config import resolve_secret

SIDES = ("dialplan", "callcontrol")


def parse_args(argv: list[str] | None, env: dict[str, str]) -> argparse.Namespace:
    """Flags over ``BENCH_*`` environment variables over defaults."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default=env.get("BENCH_STEPS", "5,10"))
    parser.add_argument("--step-seconds", type=float,
                        default=float(env.get("BENCH_STEP_SECONDS", "20")))
    parser.add_argument("--talk-seconds", type=float,
                        default=float(env.get("BENCH_TALK_SECONDS", "8")))
    parser.add_argument("--agents", type=int, default=int(env.get("BENCH_AGENTS", "0")))
    parser.add_argument("--agents-per-uas", type=int,
                        default=int(env.get("BENCH_AGENTS_PER_UAS", str(AGENTS_PER_UAS))))
    parser.add_argument("--sides", default=env.get("BENCH_SIDES", ",".join(SIDES)))
    parser.add_argument("--stop-fail-pct", type=float,
                        default=float(env.get("BENCH_STOP_FAIL_PCT", "5")))
    parser.add_argument("--out", type=Path, default=Path(env.get("BENCH_OUT", "bench/results")))
    parser.add_argument("--keep", action="store_true", default=env.get("BENCH_KEEP") == "1")
    args = parser.parse_args(argv)
    args.steps = [float(s) for s in str(args.steps).split(",") if s.strip()]
    args.sides = [s.strip() for s in str(args.sides).split(",") if s.strip()]
    unknown = set(args.sides) - set(SIDES)
    if unknown or not args.steps:
        parser.error(f"unknown sides {sorted(unknown)} or no steps")
    if args.agents <= 0:
        # agents busy at once ~ cps x (ring + talk); a margin, whole UAS blocks
        busy = max(args.steps) * (args.talk_seconds + 2) * 1.15
        args.agents = math.ceil(busy / args.agents_per_uas) * args.agents_per_uas
    return args


def observer(pbx: BenchPbx) -> AmiRecorder:
    """The bench's AMI session (the daemon's AMI user, its own filtered session)."""
    ast = pbx.config.asterisk
    return AmiRecorder(ast.ami.host, ast.ami.port, ast.ami.user,
                       resolve_secret(pbx.config, ast.ami.password).get_secret_value(),
                       CALL_EVENTS)


async def run_side(name: str, pbx: BenchPbx, agents: SippAgents, plans: list[StepPlan],
                   work: Path, stop_fail_pct: float) -> dict[str, Any]:
    """The steps of one side, up to the first that fails more than ``stop_fail_pct`` %; an
    error ends the side and is reported in it."""
    steps: list[dict[str, Any]] = []
    ami = observer(pbx)
    daemon = BenchDaemon(pbx) if name == "callcontrol" else None
    try:
        await ami.start()
        rig = StepRig(pbx, ami, agents.pids)
        if daemon is not None:
            await daemon.start()
            rig.daemon_pid, rig.db = daemon.pid, work / "callcontrol.db"
        for index, plan in enumerate(plans):
            print(f"bench: {name}: {plan.cps:g} calls/s for {plan.seconds:g} s", file=sys.stderr)
            step = await run_step(rig, plan, work / f"{name}-step{index}")
            steps.append(step)
            print(f"bench: {name}: {report.step_line(step)}", file=sys.stderr)
            if step["failed"] > stop_fail_pct / 100 * step["attempted"]:
                print(f"bench: {name}: over {stop_fail_pct:g} % failed, ramp stops",
                      file=sys.stderr)
                break
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
    pbx = await start_bench_pbx(work, args.agents, args.agents_per_uas)
    agents = SippAgents(pbx, args.talk_seconds)
    try:
        version = (await pbx.instance.cli("core show version")).split()[1]
        await agents.start()
        sides = {name: await run_side(name, pbx, agents, plans, work, args.stop_fail_pct)
                 for name in args.sides}
    finally:
        await agents.stop()
        await pbx.stop()
    settings = {"call_seconds": args.talk_seconds, "agents": args.agents,
                "agents_per_uas": args.agents_per_uas,
                "step_seconds": args.step_seconds, "steps_cps": args.steps,
                "agents_how": "sipp UAS processes, static contacts, answer at once with "
                              "G.711 a-law audio, hang up after call_seconds",
                "callers": "one sipp UAC: G.711 a-law audio, digit 1 (RFC 2833) 1.5 s after "
                           "the answer, waits for the BYE after the agent's talk",
                "latencies": "AMI event timestamps: DTMFEnd -> MusicOnHoldStart (prompt), "
                             "-> BridgeEnter with an agent channel (agent)"}
    return report.build(started, version, settings, sides)


def main(argv: list[str] | None = None) -> int:
    """Run the bench; print the result file's path. Exit 1 when a side reported an error or
    a step's rows did not match Asterisk's calls."""
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
    print(report.table(result), file=sys.stderr)
    print(path)
    if result.get("chart_skipped"):
        print(f"bench: no chart: {result['chart_skipped']}", file=sys.stderr)
    bad = 0
    for name, body in result["sides"].items():
        for step in body.get("steps", []):
            if rows_mismatch(step):
                bad += 1
                print(f"bench: FAIL {name} {step['cps']:g} calls/s: rows do not match "
                      f"Asterisk's calls: {step['db_rows']}", file=sys.stderr)
    return 1 if bad or any("error" in s for s in result["sides"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
