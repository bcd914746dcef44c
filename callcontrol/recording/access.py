"""Opening a recording's file to serve it, confined to the recordings root.

The row's path must be of the layout (:meth:`RecordingPaths.resolve` refuses anything else),
and the file is then opened one component at a time from the root's descriptor with
``O_NOFOLLOW``: a folder or file swapped for a symlink between the check and the open is
refused too, so nothing outside the root is ever read. Only a regular file is served.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import PurePosixPath

from callcontrol.errors import Gone, UnknownObject, WrongState
from callcontrol.logging import get_logger
from callcontrol.recording.paths import BadRecordingPath, RecordingPaths
from callcontrol.store.tables import RecordingRow

log = get_logger(__name__)

CHUNK = 64 * 1024
"""Bytes read per step while serving a file."""


@dataclass
class OpenRecording:
    """A recording's file, open for reading (close it with :meth:`close`)."""

    fd: int
    size: int
    row: RecordingRow

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (blocking: run it in a thread)."""
        return os.pread(self.fd, length, offset)

    def close(self) -> None:
        """Close the file."""
        os.close(self.fd)


def open_recording(paths: RecordingPaths, row: RecordingRow) -> OpenRecording:
    """Open the file of ``row`` for serving. Raises ``recording_in_progress`` (still being
    written), ``recording_purged`` (retention deleted it), ``recording_file_missing`` (marked
    missing, or absent) or ``recording_path_refused`` (not of the layout, a symlink, not a
    regular file)."""
    if row.status == "recording":
        raise WrongState("recording_in_progress", "the recording is still being written",
                         {"recording_id": row.id})
    if row.status == "purged":
        raise Gone("recording_purged", "retention deleted this recording",
                   {"recording_id": row.id, "purged_at": _iso(row)})
    if row.status == "missing":
        raise UnknownObject("recording_file_missing", "the recording's file is missing",
                            {"recording_id": row.id})
    try:
        paths.resolve(row.path)
        fd = _open_below(paths, row.path)
    except FileNotFoundError:
        raise UnknownObject("recording_file_missing", "the recording's file is missing",
                            {"recording_id": row.id}) from None
    except (BadRecordingPath, OSError) as exc:
        log.warning("recording_path_refused", recording_id=row.id, error=str(exc))
        raise UnknownObject("recording_path_refused", "the recording's file cannot be served",
                            {"recording_id": row.id}) from None
    return OpenRecording(fd, os.fstat(fd).st_size, row)


def _open_below(paths: RecordingPaths, relative: str) -> int:
    """Open ``relative`` from the root without following any symlink on the way."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    parts = PurePosixPath(relative).parts
    fd = os.open(paths.root, flags | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            child = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        file_fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise BadRecordingPath(f"{relative!r} is not a regular file")
    return file_fd


def _iso(row: RecordingRow) -> str | None:
    return row.purged_at.isoformat() if row.purged_at is not None else None
