"""``python -m faults`` (``make faults``): inject faults under a stream of calls, then count.

Knobs (environment, or the same names as flags, e.g. ``--cps 5``):
  FAULTS_CPS                new calls per second of the stream (default 2; at most 10)
  FAULTS_PHASE_SECONDS      stream seconds around each fault (default 45: the longest fault,
                            the database's 30 s, and its recovery fit in)
  FAULTS_LEAD_SECONDS       seconds into each phase the fault is injected (default 6)
  FAULTS_TALK_SECONDS       how long a caller stays after pressing 1 (default 4)
  FAULTS_DB_DOWN_SECONDS    how long PostgreSQL stays stopped (default 30)
  FAULTS_STOP_SECONDS       how long the daemon stays SIGSTOPped in stop_daemon (default 5)
  FAULTS_CUT_SECONDS        how long cut_ari / cut_ami keep the link cut (default 10)
  FAULTS_DISK_FULL_SECONDS  how long journal_full keeps the journal's disk full (default 10)
  FAULTS_LIST               faults in order (default: every fault below once; a fault may be
                            repeated):
      restart_asterisk      Asterisk stopped gracefully and started again
      kill_asterisk         Asterisk SIGKILLed and started again
      kill_daemon           the daemon SIGKILLed; the harness's supervisor restarts it
      stop_daemon           the daemon SIGSTOPped, then SIGCONTinued (same process)
      stop_database         the private PostgreSQL stopped, then started again
      cut_ari               the daemon's ARI link (WebSocket and HTTP) cut at the harness's TCP
                            proxy: open connections reset, new ones refused, then restored
      cut_ami               the daemon's AMI link cut the same way
      journal_full          the journal's tmpfs (mounted by the harness: needs root) filled
      hang_then_kill_daemon (not in the default list) SIGSTOP for 2 s, then SIGKILL
  FAULTS_AGENTS             agent headsets (default: enough for the stream's concurrent calls)
  FAULTS_OUT                results folder (default faults/results)
  FAULTS_KEEP               1: keep the work folder (daemon log, sipp traces, Asterisk logs)
A run at 10 calls/s: FAULTS_CPS=10 (every fault once, about 7 minutes).

Exit 0 when every call has a final row with an outcome, nothing is doubled, every call that
reached Asterisk has exactly one row and the daemon came back after each fault; 1 otherwise (the
result file lists each such call with its timeline and the daemon's log lines about it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.pbx import EXTENSION, BenchPbx, SippAgents, start_bench_pbx
from bench.report import git_commit
from bench.sides import wait_idle
from callcontrol.config import resolve_secret
from callcontrol.pbx.ports import free_port
from callcontrol.store.db import create_engine
from callcontrol_testing.postgres import PrivatePostgres
from faults.diskfull import JournalDisk
from faults.inject import DEFAULT_FAULTS, FAULTS, FaultWindow, Rig
from faults.proxy import LinkProxy
from faults.stasis import StasisRecorder
from faults.stream import CallStream, StreamPlan, StreamResult
from faults.supervisor import Restart, SupervisedDaemon
from faults.tally import Phase, read_store, tally

KILLING_FAULTS = frozenset({"kill_daemon", "hang_then_kill_daemon"})
FLOW = ("bench hotline (bench/flows/bench.yaml): answer, prompt with barge-in, digit 1 "
        "(RFC 2833, 1.5 s after the answer), queue 'bench', a sipp agent answers at once, "
        "talk, the caller hangs up")


NUMBER_KNOBS = {
    "cps": "2", "phase-seconds": "45", "lead-seconds": "6", "talk-seconds": "4",
    "db-down-seconds": "30", "stop-seconds": "5", "cut-seconds": "10", "disk-full-seconds": "10",
}
"""Numeric flags and their defaults; each is also read from ``FAULTS_<FLAG>``."""


def parse_args(argv: list[str] | None, env: dict[str, str]) -> argparse.Namespace:
    """Flags over ``FAULTS_*`` environment variables over defaults."""
    parser = argparse.ArgumentParser(prog="python -m faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, default in NUMBER_KNOBS.items():
        env_name = "FAULTS_" + flag.upper().replace("-", "_")
        parser.add_argument(f"--{flag}", type=float, default=float(env.get(env_name, default)))
    parser.add_argument("--faults", default=env.get("FAULTS_LIST", ",".join(DEFAULT_FAULTS)))
    parser.add_argument("--agents", type=int, default=int(env.get("FAULTS_AGENTS", "0")))
    parser.add_argument("--out", type=Path, default=Path(env.get("FAULTS_OUT", "faults/results")))
    parser.add_argument("--keep", action="store_true", default=env.get("FAULTS_KEEP") == "1")
    args = parser.parse_args(argv)
    args.faults = [f.strip() for f in str(args.faults).split(",") if f.strip()]
    unknown = set(args.faults) - set(FAULTS)
    if unknown or not args.faults:
        parser.error(f"unknown faults {sorted(unknown)} (known: {', '.join(FAULTS)}) or none")
    if not 0 <= args.lead_seconds < args.phase_seconds or not 0 < args.cps <= 10:
        parser.error("need 0 <= lead-seconds < phase-seconds and 0 < cps <= 10")
    if args.agents <= 0:
        # concurrent calls ~ cps x (answer + prompt until the digit + talk), plus a margin
        args.agents = math.ceil(args.cps * (args.talk_seconds + 3) * 1.3) + 2
    return args


def point_daemon(pbx: BenchPbx, url: str, proxies: dict[str, LinkProxy]) -> None:
    """Point the daemon's config at the database ``url`` and at the link proxies (ARI URL,
    AMI port), and log at info (recovery lines are info). Asterisk was rendered from the
    config before: it keeps its own ports."""
    data = json.loads(pbx.config_file.read_text())
    data["database"]["url"] = url
    data["asterisk"]["ari"]["url"] = f"http://127.0.0.1:{proxies['ari'].listen_port}"
    data["asterisk"]["ami"]["port"] = proxies["ami"].listen_port
    data["run"]["log_level"] = "info"
    pbx.config_file.write_text(json.dumps(data, indent=2) + "\n")


def link_proxies(pbx: BenchPbx) -> dict[str, LinkProxy]:
    """A proxy for each of the daemon's links to Asterisk, on a free port."""
    instance = pbx.instance
    return {"ari": LinkProxy("ari", free_port(), instance.host, instance.http_port),
            "ami": LinkProxy("ami", free_port(), instance.host, instance.ami_port)}


async def inject_all(rig: Rig, names: list[str], start: float, phase: float, lead: float,
                     stream: asyncio.Task[StreamResult]) -> list[FaultWindow]:
    """Inject each fault ``lead`` seconds into its phase (or once the previous one is over)."""
    windows: list[FaultWindow] = []
    for index, name in enumerate(names):
        delay = start + index * phase + lead - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if stream.done():
            break
        print(f"faults: injecting {name}", file=sys.stderr)
        window = await FAULTS[name](rig)
        print(f"faults: {name}: {window.to_json()}", file=sys.stderr)
        windows.append(window)
    return windows


async def settle(rig: Rig, time_limit: float = 60.0) -> dict[str, Any]:
    """Wait until Asterisk has no channel, the daemon is healthy and its store has written
    everything; return the last /health."""
    await wait_idle(rig.pbx, time_limit / 2)
    deadline = time.monotonic() + time_limit
    status, body = await rig.daemon.health()
    while time.monotonic() < deadline:
        status, body = await rig.daemon.health()
        if status == 200 and body.get("calls_active") == 0 and body["db"].get("pending") == 0:
            break
        await asyncio.sleep(0.3)
    return {"http": status, **body}


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Start everything, run the stream with its faults, match calls to rows."""
    started = datetime.now(UTC)
    postgres = PrivatePostgres()
    await asyncio.to_thread(postgres.start)
    try:
        pbx = await start_bench_pbx(work, args.agents)
        try:
            return await _run_on(pbx, postgres, args, started)
        finally:
            await pbx.stop()
    finally:
        await asyncio.to_thread(postgres.cleanup)


async def _run_on(pbx: BenchPbx, postgres: PrivatePostgres, args: argparse.Namespace,
                  started: datetime) -> dict[str, Any]:
    url = postgres.url("postgres")
    proxies = link_proxies(pbx)
    await asyncio.to_thread(point_daemon, pbx, url, proxies)
    disk = JournalDisk(pbx.config.path(pbx.config.database.journal_dir))
    if "journal_full" in args.faults:
        await asyncio.to_thread(disk.mount)
    try:
        for proxy in proxies.values():
            await proxy.start()
        return await _run_rig(pbx, postgres, proxies, disk, args, started)
    finally:
        for proxy in proxies.values():
            await proxy.close()
        await asyncio.to_thread(disk.unmount)


async def _run_rig(pbx: BenchPbx, postgres: PrivatePostgres, proxies: dict[str, LinkProxy],
                   disk: JournalDisk, args: argparse.Namespace,
                   started: datetime) -> dict[str, Any]:
    url = postgres.url("postgres")
    version = (await pbx.instance.cli("core show version")).split()[1]
    ast = pbx.config.asterisk
    agents = SippAgents(pbx)
    daemon = SupervisedDaemon(pbx)
    ami = StasisRecorder(ast.ami.host, ast.ami.port, ast.ami.user,
                         resolve_secret(pbx.config, ast.ami.password).get_secret_value())
    engine = create_engine(url)
    rig = Rig(pbx, agents, daemon, postgres, proxies, disk,
              db_down_seconds=args.db_down_seconds, stop_seconds=args.stop_seconds,
              cut_seconds=args.cut_seconds, disk_full_seconds=args.disk_full_seconds)
    try:
        await agents.start()
        await daemon.start()
        await ami.start()
        plan = StreamPlan(args.cps, args.phase_seconds * len(args.faults), args.talk_seconds)
        stream = CallStream(pbx.instance.host, pbx.instance.sip_port, pbx.caller.username,
                            pbx.caller.password, EXTENSION, pbx.work / "callers")
        t0 = time.time()
        print(f"faults: {plan.calls} calls at {plan.cps:g}/s, faults {args.faults}",
              file=sys.stderr)
        calls = asyncio.create_task(stream.run(plan))
        windows = await inject_all(rig, args.faults, t0, args.phase_seconds, args.lead_seconds,
                                   calls)
        result = await calls
        health = await settle(rig)
        store = await read_store(engine)
        phases = [Phase(t0 + i * args.phase_seconds, t0 + (i + 1) * args.phase_seconds, w)
                  for i, w in enumerate(windows)]
        if not phases:
            raise RuntimeError("the stream ended before any fault was injected")
        counted = tally(result.calls, phases, store, ami.by_call_id(), daemon.log_file)
        mark_daemon_up(counted["faults"], phases, daemon.restarts)
    finally:
        await ami.close()
        await daemon.stop()
        await agents.stop()
        await engine.dispose()
    totals = counted["totals"]
    return {
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_commit(),
        "machine": {"cores": os.cpu_count(), "asterisk": version},
        "settings": {"cps": args.cps, "phase_seconds": args.phase_seconds,
                     "lead_seconds": args.lead_seconds, "talk_seconds": args.talk_seconds,
                     "db_down_seconds": args.db_down_seconds,
                     "stop_seconds": args.stop_seconds, "cut_seconds": args.cut_seconds,
                     "disk_full_seconds": args.disk_full_seconds, "faults": args.faults,
                     "agents": args.agents, "database": "postgresql (private server)",
                     "flow": FLOW},
        "sipp": {"exit": result.returncode, "created": result.stats.created,
                 "successful": result.stats.successful, "failed": result.stats.failed,
                 "traced_calls": len(result.calls)},
        "daemon_restarts": [r.to_json() for r in daemon.restarts],
        "health_after": health,
        "faults": counted["faults"],
        "totals": totals,
        "defects": counted["defects"],
        "ok": (totals["without_final_row"] == totals["doubled"] == 0
               and totals["rows_without_outcome"] == 0
               and totals["reached_without_exactly_one_row"] == 0
               and all(f["daemon_up"] for f in counted["faults"])),
    }


def mark_daemon_up(faults: list[dict[str, Any]], phases: list[Phase],
                   restarts: list[Restart]) -> None:
    """Per fault, ``daemon_up``: the daemon served again after the fault and died only when
    the fault killed it (``daemon_deaths`` counts the deaths in its phase)."""
    for out, phase in zip(faults, phases, strict=True):
        deaths = sum(1 for r in restarts if phase.start <= r.died < phase.end)
        killed = 1 if phase.fault.name in KILLING_FAULTS else 0
        out["daemon_deaths"] = deaths
        out["daemon_up"] = phase.fault.recovered is not None and deaths == killed


def write(result: dict[str, Any], out_dir: Path) -> Path:
    """Write ``out_dir/<UTC timestamp>.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def summary(result: dict[str, Any]) -> list[str]:
    """One line per fault with the figures that matter, then the totals."""
    lines = []
    for f in result["faults"]:
        ast = f["asterisk"]
        lines.append(
            f"faults: {f['fault']['name']}: daemon up {f['daemon_up']}, reconnect "
            f"{f['fault']['reconnect_s']} s, {f['attempted']} calls, failed during the fault "
            f"{f['failed_during_fault']}, without final row {f['without_final_row']}, rows "
            f"without outcome {f['rows_without_outcome']}, doubled {f['doubled']}, reached "
            f"the hotline {ast['reached_hotline']} / with one row {ast['with_one_row']}; "
            f"classes {f['classes']}")
    t = result["totals"]
    lines.append(f"faults: totals: {t['attempted']} calls, without final row "
                 f"{t['without_final_row']}, rows without outcome {t['rows_without_outcome']}, "
                 f"doubled {t['doubled']}, reached the hotline {t['reached_hotline']} (without "
                 f"exactly one row {t['reached_without_exactly_one_row']})")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run; print the result file's path. Exit 1 for a call without a final row or a
    doubled record."""
    args = parse_args(argv, dict(os.environ))
    work = Path(tempfile.mkdtemp(prefix="callcontrol-faults-"))
    try:
        result = asyncio.run(run(args, work))
    finally:
        if args.keep:
            print(f"faults: work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    path = write(result, args.out)
    print(path)
    for line in summary(result):
        print(line, file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
