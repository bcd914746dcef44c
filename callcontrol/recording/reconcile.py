"""Files against rows: what ``recordings check`` reports, ``--repair`` marks, and recovery.

:func:`check` compares the recordings root with the rows:

- ``orphan_file``: a file below the root that no row (not purged) names;
- ``missing_file``: a finished row (``complete``/``partial``) whose file is absent;
- ``size_mismatch`` / ``sha256_mismatch``: the file is not what its row says;
- ``bad_path``: a row whose path is not of the layout or passes through a symlink.

Rows still ``recording`` are left out (recovery finishes them), as are rows already marked
``missing``. :func:`repair` marks the rows of missing files ``missing``. :func:`recover` runs
at the daemon's start: every row a crash left ``recording`` (and not still being written) is
finished from its file, ``complete`` when the WAV header is whole, ``partial`` when it was cut,
or marked ``missing`` when there is no file.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.logging import get_logger
from callcontrol.recording.files import measure, sha256_of
from callcontrol.recording.paths import BadRecordingPath, RecordingPaths
from callcontrol.store.recording_queries import apply_now, recordings_with_status
from callcontrol.store.records import (
    InteractionLog,
    RecordingFinished,
    RecordingMarked,
    RecordingStatus,
)
from callcontrol.store.tables import RecordingRow

log = get_logger(__name__)

FindingKind = Literal["orphan_file", "missing_file", "size_mismatch", "sha256_mismatch",
                      "bad_path"]


@dataclass(frozen=True)
class Finding:
    """One disagreement between the files and the rows."""

    kind: FindingKind
    path: str
    recording_id: str | None = None
    call_id: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """The finding as a JSON-ready dict."""
        return asdict(self)


async def check(engine: AsyncEngine, paths: RecordingPaths) -> list[Finding]:
    """Every disagreement between the recordings root and the rows, rows first then files."""
    rows = await recordings_with_status(engine)
    findings = [f for row in rows if row.status in ("complete", "partial")
                if (f := _check_row(paths, row)) is not None]
    named = {row.path: row for row in rows}
    for relative in paths.files():
        row = named.get(relative)
        if row is None:
            findings.append(Finding("orphan_file", relative, detail="no row names it"))
        elif row.status == "purged":
            findings.append(Finding("orphan_file", relative, row.id, row.call_id,
                                    "its row is purged"))
    return findings


def _check_row(paths: RecordingPaths, row: RecordingRow) -> Finding | None:
    def finding(kind: FindingKind, detail: str) -> Finding:
        return Finding(kind, row.path, row.id, row.call_id, detail)

    try:
        path = paths.resolve(row.path)
    except BadRecordingPath as exc:
        return finding("bad_path", str(exc))
    if not path.is_file():
        return finding("missing_file", f"status {row.status}, no file")
    size = path.stat().st_size
    if size != row.size_bytes:
        return finding("size_mismatch", f"row {row.size_bytes} bytes, file {size}")
    digest = sha256_of(path)
    if digest != row.sha256:
        return finding("sha256_mismatch", f"row {row.sha256}, file {digest}")
    return None


async def repair(engine: AsyncEngine, findings: Sequence[Finding], *, now: datetime) -> int:
    """Mark the rows of ``missing_file`` findings ``missing``; return how many."""
    marks = [RecordingMarked(recording_id=f.recording_id, status="missing", at=now)
             for f in findings if f.kind == "missing_file" and f.recording_id is not None]
    if marks:
        await apply_now(engine, marks)
    return len(marks)


async def recover(
    engine: AsyncEngine,
    paths: RecordingPaths,
    sink: InteractionLog,
    *,
    now: datetime,
    active: Collection[str] = (),
) -> dict[str, RecordingStatus]:
    """Finish every row left ``recording`` whose id is not in ``active`` (recordings of adopted
    calls still being written); the records go to ``sink`` (the daemon's writer, after its
    journal replay). Return the new status of each row finished."""
    done: dict[str, RecordingStatus] = {}
    for row in await recordings_with_status(engine, "recording"):
        if row.id in active:
            continue
        done[row.id] = status = _finish(paths, row, sink, now)
        log.warning("recording_recovered", recording_id=row.id, call_id=row.call_id,
                    status=status)
    return done


def _finish(
    paths: RecordingPaths, row: RecordingRow, sink: InteractionLog, now: datetime
) -> RecordingStatus:
    try:
        path = paths.resolve(row.path)
    except BadRecordingPath:
        path = None
    if path is None or not path.is_file():
        sink.append(RecordingMarked(recording_id=row.id, status="missing", at=now))
        return "missing"
    figures = measure(path)
    status: Literal["complete", "partial"] = "complete" if figures.complete else "partial"
    ended = datetime.fromtimestamp(path.stat().st_mtime, UTC)  # Asterisk's last write
    sink.append(RecordingFinished(
        recording_id=row.id, status=status, duration_s=figures.duration_s,
        size_bytes=figures.size_bytes, sha256=figures.sha256, at=max(ended, row.started_at)))
    return status
