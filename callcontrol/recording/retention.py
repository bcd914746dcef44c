"""Retention: delete the recordings their policy no longer keeps, and mark their rows purged.

A recording is expired when it started more than its policy's ``retention_days`` ago and it is
finished (``complete``, ``partial``) or its file is already ``missing``; a recording still being
written is never purged. The policy is looked up by the name on the row, in the current
settings: shortening a policy's retention applies to the recordings already made. A row whose
policy no longer exists is kept and reported, never guessed at. Voicemail messages (rows of
the policy ``voicemail``) are kept for ``recording.voicemail.retention_days``. The file is
deleted first and the row marked after, so a purge cut short leaves a row whose file is gone,
which the next purge (or ``recordings check``) finds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.logging import get_logger
from callcontrol.recording.paths import BadRecordingPath, RecordingPaths
from callcontrol.recording.policy import RecordingSettings
from callcontrol.store.recording_queries import apply_now, policies_in_use, started_before
from callcontrol.store.records import RecordingMarked
from callcontrol.store.tables import RecordingRow

log = get_logger(__name__)


@dataclass(frozen=True)
class Expired:
    """One expired recording and what was done with its file."""

    row: RecordingRow
    file: str
    """``deleted``, ``absent`` (already gone), ``refused`` (bad path: row left as is), or
    ``would delete`` on a dry run."""


@dataclass
class PurgePlan:
    """What a purge did (or, on a dry run, would do)."""

    expired: list[Expired] = field(default_factory=list)
    unknown_policies: list[str] = field(default_factory=list)
    """Policies named by rows but not configured: their recordings are kept."""


async def purge(
    engine: AsyncEngine,
    paths: RecordingPaths,
    settings: RecordingSettings,
    *,
    now: datetime,
    dry_run: bool = False,
) -> PurgePlan:
    """Delete every expired recording's file and mark its row ``purged`` (``purged_at`` =
    ``now``); with ``dry_run`` change nothing and report what would go."""
    plan = PurgePlan()
    for name in await policies_in_use(engine):
        try:
            days = settings.retention_days(name)
        except KeyError:
            plan.unknown_policies.append(name)
            log.warning("recording_policy_unknown", policy=name, action="kept")
            continue
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        rows = await started_before(engine, name, cutoff)
        done = [_expire(paths, row, dry_run) for row in rows]
        plan.expired += done
        marks = [RecordingMarked(recording_id=e.row.id, status="purged", at=now)
                 for e in done if e.file in ("deleted", "absent")]
        if marks:
            await apply_now(engine, marks)
    return plan


def _expire(paths: RecordingPaths, row: RecordingRow, dry_run: bool) -> Expired:
    try:
        path = paths.resolve(row.path)
    except BadRecordingPath as exc:
        log.error("recording_purge_refused", recording_id=row.id, error=str(exc))
        return Expired(row, "refused")
    if dry_run:
        return Expired(row, "would delete" if path.exists() else "absent (dry run)")
    try:
        path.unlink()
    except FileNotFoundError:
        return Expired(row, "absent")
    log.info("recording_purged", recording_id=row.id, call_id=row.call_id, policy=row.policy)
    return Expired(row, "deleted")
