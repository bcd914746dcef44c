"""``python -m bench.soak`` (``make soak``): the callcontrol side at a steady rate for a long time.

Knobs (environment, or the same names as flags):
  SOAK_MINUTES         length of the whole soak, warm-up included (default 30)
  SOAK_CPS             calls per second (default 10)
  SOAK_TALK_SECONDS    how long an agent talks (default 8)
  SOAK_WARMUP_MINUTES  the warm-up part (default a fifth of the soak, at most 3)
  SOAK_OUT             results folder (default bench/results)

The calls run in two parts, each a bench step (bench/sides.py: same callers, agents and
checks): a warm-up, then the rest. The daemon is measured idle after each part (all channels
gone, the store caught up): RSS, open file descriptors, asyncio tasks (``/health``), the
journal's size and the records not yet confirmed by the database. While calls run, the same
figures are sampled every 10 s. Targets (exit 1 when one is missed): RSS growth from the
idle point after the warm-up to the idle point at the end under 10 MB; no more file
descriptors (but for 2) or tasks than after the warm-up; the journal back to its active
segment with nothing pending; 0 failed calls and every call with exactly one closed row.
Writes ``soak-<UTC timestamp>.json`` (and a PNG of the samples) in the results folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench import report
from bench.__main__ import observer
from bench.daemon import BenchDaemon
from bench.measure import open_fds, rss_mb
from bench.pbx import AGENTS_PER_UAS, SippAgents, start_bench_pbx
from bench.sides import StepPlan, StepRig, rows_mismatch, run_step, wait_idle
from callcontrol.ari.http import IDLE_SECONDS

RSS_GROWTH_MB = 10.0
# Open fds vary by one or two at idle (the journal's active segment, SQLite's WAL, a closing
# keep-alive connection); a leak at 10 calls/s shows as hundreds.
FD_SLACK = 2
JOURNAL_SEGMENT_BYTES = 8 * 1024 * 1024  # callcontrol.store.journal's default segment size


def parse_args(argv: list[str] | None, env: dict[str, str]) -> argparse.Namespace:
    """Flags over ``SOAK_*`` environment variables over defaults."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=float(env.get("SOAK_MINUTES", "30")))
    parser.add_argument("--cps", type=float, default=float(env.get("SOAK_CPS", "10")))
    parser.add_argument("--talk-seconds", type=float,
                        default=float(env.get("SOAK_TALK_SECONDS", "8")))
    parser.add_argument("--warmup-minutes", type=float,
                        default=float(env["SOAK_WARMUP_MINUTES"])
                        if "SOAK_WARMUP_MINUTES" in env else None)
    parser.add_argument("--out", type=Path, default=Path(env.get("SOAK_OUT", "bench/results")))
    args = parser.parse_args(argv)
    if args.warmup_minutes is None:
        args.warmup_minutes = min(3.0, args.minutes / 5)
    if not 0 < args.warmup_minutes < args.minutes:
        parser.error("the warm-up must be shorter than the soak")
    return args


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*") if p.is_file())


async def daemon_figures(daemon: BenchDaemon, journal: Path) -> dict[str, Any]:
    """RSS, open fds, asyncio tasks, active calls, journal bytes and pending records now."""
    pid = daemon.pid or 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
            http.get(f"{daemon.base}/health") as resp:
        health = await resp.json()
    return {
        "t": round(time.time(), 1),
        "rss_mb": rss_mb(pid),
        "fds": open_fds(pid),
        "tasks": health.get("tasks"),
        "calls_active": health.get("calls_active"),
        "journal_bytes": await asyncio.to_thread(_dir_bytes, journal),
        "pending": health.get("db", {}).get("pending"),
    }


async def sample_forever(daemon: BenchDaemon, journal: Path, into: list[dict[str, Any]],
                         every: float = 10.0) -> None:
    """Append :func:`daemon_figures` to ``into`` every ``every`` seconds."""
    while True:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            into.append(await daemon_figures(daemon, journal))
        await asyncio.sleep(every)


async def idle_figures(rig: StepRig, daemon: BenchDaemon, journal: Path) -> dict[str, Any]:
    """The daemon's figures once every channel is gone and nothing is pending."""
    await wait_idle(rig.pbx, 60)
    figures = await daemon_figures(daemon, journal)
    deadline = time.monotonic() + 30
    while (figures["pending"] or figures["calls_active"]) and time.monotonic() < deadline:
        await asyncio.sleep(1)
        figures = await daemon_figures(daemon, journal)
    # let the last call tasks finish, and the ARI connections of the last burst close (the
    # pool keeps an idle one IDLE_SECONDS): what stays open then is what the daemon holds
    await asyncio.sleep(IDLE_SECONDS + 2)
    return await daemon_figures(daemon, journal)


def verdict(parts: list[dict[str, Any]], warm: dict[str, Any],
            end: dict[str, Any]) -> dict[str, Any]:
    """Each target with its figure and whether it was met."""
    failed = sum(p["failed"] for p in parts)
    mismatch = sum(rows_mismatch(p) for p in parts)
    growth = round((end["rss_mb"] or 0) - (warm["rss_mb"] or 0), 1)
    return {
        "rss_growth_mb": {"value": growth, "limit": RSS_GROWTH_MB, "ok": growth < RSS_GROWTH_MB},
        "fds": {"after_warmup": warm["fds"], "end": end["fds"],
                "slack": FD_SLACK,
                "ok": end["fds"] is not None and end["fds"] <= warm["fds"] + FD_SLACK},
        "tasks": {"after_warmup": warm["tasks"], "end": end["tasks"],
                  "ok": end["tasks"] is not None and end["tasks"] <= warm["tasks"]},
        "journal": {"bytes_end": end["journal_bytes"], "pending_end": end["pending"],
                    "ok": end["pending"] == 0
                    and end["journal_bytes"] <= JOURNAL_SEGMENT_BYTES + 1024},
        "failed_calls": {"value": failed, "ok": failed == 0},
        "rows_mismatch": {"value": mismatch, "ok": mismatch == 0},
    }


async def soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run the soak; return the result document."""
    started = datetime.now(UTC)
    agents_needed = args.cps * (args.talk_seconds + 2) * 1.15
    agents_count = -(-int(agents_needed) // AGENTS_PER_UAS) * AGENTS_PER_UAS
    pbx = await start_bench_pbx(work, agents_count)
    agents = SippAgents(pbx, args.talk_seconds)
    daemon = BenchDaemon(pbx)
    ami = observer(pbx)
    journal = work / "journal"
    samples: list[dict[str, Any]] = []
    try:
        await agents.start()
        await ami.start()
        await daemon.start()
        rig = StepRig(pbx, ami, agents.pids, daemon.pid, work / "callcontrol.db")
        sampler = asyncio.create_task(sample_forever(daemon, journal, samples))
        try:
            start = warm = await idle_figures(rig, daemon, journal)
            parts = []
            for name, minutes in (("warm-up", args.warmup_minutes),
                                  ("soak", args.minutes - args.warmup_minutes)):
                print(f"soak: {name}: {args.cps:g} calls/s for {minutes:g} min", file=sys.stderr)
                plan = StepPlan(args.cps, minutes * 60, args.talk_seconds)
                part = await run_step(rig, plan, work / name)
                part["part"] = name
                parts.append(part)
                print(f"soak: {name}: {report.step_line(part)}", file=sys.stderr)
                if name == "warm-up":
                    warm = await idle_figures(rig, daemon, journal)
            end = await idle_figures(rig, daemon, journal)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    finally:
        await ami.close()
        await daemon.stop()
        await agents.stop()
        await pbx.stop()
    return {"started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "git": report.git_commit(),
            "settings": {"minutes": args.minutes, "warmup_minutes": args.warmup_minutes,
                         "cps": args.cps, "talk_seconds": args.talk_seconds,
                         "agents": agents_count},
            "idle": {"start": start, "after_warmup": warm, "end": end},
            "parts": parts, "targets": verdict(parts, warm, end), "samples": samples}


def write(result: dict[str, Any], out_dir: Path) -> Path:
    """``soak-<UTC>.json`` and, with matplotlib, a PNG of the samples beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"soak-{result['started'].replace(':', '').replace('-', '')}.json"
    try:
        result["chart"] = _chart(result, path.with_suffix(".png"))
    except ImportError:
        result["chart"] = None
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def _chart(result: dict[str, Any], png: Path) -> str:
    plt = report.pyplot()
    samples = result["samples"]
    t0 = samples[0]["t"] if samples else 0
    minutes = [(s["t"] - t0) / 60 for s in samples]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, key, label in zip(axes, ("rss_mb", "fds", "tasks"),
                              ("daemon RSS (MB)", "open fds", "asyncio tasks"), strict=True):
        ax.plot(minutes, [s[key] for s in samples], marker=".")
        ax.set(xlabel="minutes", ylabel=label, title=label)
        ax.axvline(result["settings"]["warmup_minutes"], color="grey", linestyle=":")
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"make soak {result['started']}: {result['settings']['cps']:g} calls/s")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png.name


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print the result file's path and each target; exit 1 when one is missed."""
    args = parse_args(argv, dict(os.environ))
    work = Path(tempfile.mkdtemp(prefix="callcontrol-soak-"))
    try:
        result = asyncio.run(soak(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = write(result, args.out)
    missed = [name for name, target in result["targets"].items() if not target["ok"]]
    for name, target in result["targets"].items():
        print(f"soak: {'ok  ' if target['ok'] else 'MISS'} {name}: "
              f"{ {k: v for k, v in target.items() if k != 'ok'} }", file=sys.stderr)
    print(path)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
