"""``callcontrol recordings ...``: check files against rows, purge what retention expired.

    callcontrol --config FILE recordings check [--repair] [--json]
    callcontrol --config FILE recordings purge [--dry-run] [--json]

Both print one line per finding (or per expired recording) under a header, like
``calls list``; ``--json`` prints a JSON array instead. ``check`` exits 1 when it found
anything (also with ``--repair``: the next run is clean); ``purge`` exits 1 when it had to keep
a recording it could not judge (a policy no longer configured, a path refused).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from callcontrol.config import Config, RecordingSettings
from callcontrol.logging import configure_logging
from callcontrol.recording.paths import RecordingPaths
from callcontrol.recording.reconcile import Finding, check, repair
from callcontrol.recording.retention import Expired, PurgePlan, purge
from callcontrol.store.db import create_engine
from callcontrol.store.queries import format_table, row_to_json

FINDING_COLUMNS = ("finding", "recording", "call", "path", "detail")
PURGE_COLUMNS = ("started (UTC)", "recording", "call", "policy", "file", "path")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``recordings`` sub-commands to ``parser`` (its parser in the main CLI)."""
    sub = parser.add_subparsers(dest="recordings_command", required=True, metavar="COMMAND")
    chk = sub.add_parser("check", help="files without a row, rows without a file, mismatches")
    chk.add_argument("--repair", action="store_true", help="mark rows whose file is missing")
    chk.add_argument("--json", action="store_true", help="print a JSON array")
    prg = sub.add_parser("purge", help="delete recordings their policy's retention expired")
    prg.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")
    prg.add_argument("--json", action="store_true", help="print a JSON array")


def main(args: argparse.Namespace, config: Config) -> int:
    """Run ``recordings check`` or ``recordings purge``; return the exit status. Logs (each
    file purged) go to stderr as JSON lines, so stdout holds only the listing."""
    configure_logging(config.run.log_level)
    paths = RecordingPaths(config.path(config.asterisk.recordings_dir))
    now = datetime.now(UTC)
    return asyncio.run(run(args, config.database_url(), paths, config.recording, now))


async def run(
    args: argparse.Namespace,
    url: str,
    paths: RecordingPaths,
    settings: RecordingSettings,
    now: datetime,
) -> int:
    """The command on the database at ``url``: what :func:`main` runs, with its inputs given."""
    engine = create_engine(url)
    try:
        if args.recordings_command == "check":
            findings = await check(engine, paths)
            repaired = await repair(engine, findings, now=now) if args.repair else 0
            print(_findings_out(findings, args.json))
            if repaired:
                print(f"marked {repaired} recording(s) missing", file=sys.stderr)
            return 1 if findings else 0
        plan = await purge(engine, paths, settings, now=now, dry_run=args.dry_run)
    finally:
        await engine.dispose()
    print(_purge_out(plan.expired, args.json))
    return _purge_status(plan)


def _findings_out(findings: list[Finding], as_json: bool) -> str:
    if as_json:
        return json.dumps([f.to_json() for f in findings], indent=2)
    return format_table(FINDING_COLUMNS, (
        (f.kind, f.recording_id or "-", f.call_id or "-", f.path, f.detail) for f in findings))


def _purge_out(expired: list[Expired], as_json: bool) -> str:
    if as_json:
        return json.dumps([{**row_to_json(e.row), "file": e.file} for e in expired], indent=2)
    return format_table(PURGE_COLUMNS, (
        (e.row.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), e.row.id,
         e.row.call_id, e.row.policy, e.file, e.row.path) for e in expired))


def _purge_status(plan: PurgePlan) -> int:
    for name in plan.unknown_policies:
        print(f"callcontrol: recordings of policy {name!r} kept: no such policy is configured",
              file=sys.stderr)
    refused = sum(1 for e in plan.expired if e.file == "refused")
    if refused:
        print(f"callcontrol: {refused} recording(s) kept: path refused", file=sys.stderr)
    return 1 if plan.unknown_policies or refused else 0
