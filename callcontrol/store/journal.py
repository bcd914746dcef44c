"""The local append-only journal every record goes through before the database.

DECISIONS.md, "Journal first": :meth:`Journal.append` writes one JSON line with a plain
``write()`` (so a SIGKILL loses nothing the kernel already has); the writer task calls
:meth:`Journal.sync` to fsync in batches and :meth:`Journal.confirm` once the database holds
every record up to a sequence number. The journal is a folder of segment files
(``0000000001.jsonl``...) and a ``checkpoint.json`` holding the confirmed sequence number. A
segment is deleted once all its records are confirmed; the active segment rotates when it grows
past ``segment_bytes`` and at every start, so a line torn by a crash is always the last line of
an old segment: a :class:`JournalReader` skips it with a warning.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from callcontrol.errors import StoreError
from callcontrol.logging import get_logger
from callcontrol.store.codec import BadLine, decode_line, encode_line
from callcontrol.store.records import Record

log = get_logger(__name__)

CHECKPOINT = "checkpoint.json"
# The checkpoint is one line of this many bytes (JSON padded with spaces), rewritten in place.
CHECKPOINT_BYTES = 64
SUFFIX = ".jsonl"


@dataclass
class _Segment:
    number: int
    path: Path
    last_seq: int | None  # None while it holds no complete record


class Journal:
    """A segmented append-only journal with a confirmed-sequence checkpoint.

    Owned by one event loop thread: every method except :meth:`sync`'s fsync runs there.
    """

    def __init__(self, directory: Path, *, segment_bytes: int = 8 * 1024 * 1024) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.confirmed = 0
        self.last_seq = 0
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._checkpoint_fd: int | None = None
        self._size = 0
        self._dirty = False

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Read the checkpoint and the segments left by earlier runs, start a new segment."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.confirmed = self._read_checkpoint()
            for path in sorted(self.directory.glob("*" + SUFFIX)):
                if path.stem.isdigit():
                    self._segments.append(_Segment(int(path.stem), path, _last_seq_of(path)))
        except OSError as exc:
            raise StoreError(f"cannot open journal {self.directory}: {exc}") from exc
        seqs = [s.last_seq for s in self._segments if s.last_seq is not None]
        self.last_seq = max([self.confirmed, *seqs])
        self._delete_confirmed_segments()
        self._new_segment()

    def close(self) -> None:
        """fsync and close the active segment; close the checkpoint."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._checkpoint_fd is not None:
            os.close(self._checkpoint_fd)
            self._checkpoint_fd = None

    # -- writing --------------------------------------------------------------------------

    @property
    def tail(self) -> tuple[Path, int]:
        """Where the next appended record will start: ``(segment path, byte offset)``."""
        return self._segments[-1].path, self._size

    def append(self, record: Record) -> int:
        """Write ``record`` as the next line and return its sequence number.

        Raise :class:`StoreError` when the line could not be written whole (disk full, I/O
        error): nothing of it counts. A line written in part is abandoned with its segment (the
        next append starts a new one), so a partial line stays the last of its segment.
        """
        if not self._segments:
            raise StoreError("journal is not open")
        if self._fd is None:  # the last segment was abandoned: start a new one
            self._new_segment()
        assert self._fd is not None
        seq = self.last_seq + 1
        line = encode_line(seq, record)
        try:
            written = os.write(self._fd, line)
        except OSError as exc:  # nothing written: the segment stays usable
            raise StoreError(f"cannot write journal: {exc}") from exc
        if written != len(line):
            self._abandon_segment()
            raise StoreError(f"cannot write journal: short write ({written} of {len(line)} "
                             "bytes)")
        self.last_seq = seq
        self._segments[-1].last_seq = seq
        self._size += written
        self._dirty = True
        if self._size >= self.segment_bytes:  # the next append starts a new segment
            self._abandon_segment()
        return seq

    async def sync(self) -> None:
        """fsync what was appended since the last sync (in a worker thread).

        Raise :class:`StoreError` when fsync fails; the next call tries again.
        """
        if not self._dirty or self._fd is None:
            return
        self._dirty = False
        try:
            fd = os.dup(self._fd)
            try:
                await asyncio.to_thread(os.fsync, fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._dirty = True
            raise StoreError(f"cannot fsync journal: {exc}") from exc

    def confirm(self, seq: int) -> None:
        """The database holds every record up to ``seq``: checkpoint and drop old segments.

        A checkpoint that cannot be written (disk full) is only logged: it lags, and a restart
        replays a little more than needed, which changes nothing in the database.
        """
        if seq <= self.confirmed:
            return
        self.confirmed = seq
        try:
            self._write_checkpoint(seq)
        except OSError as exc:
            log.warning("journal_checkpoint_failed", confirmed=seq, error=str(exc))
        self._delete_confirmed_segments()

    def _write_checkpoint(self, seq: int) -> None:
        """Rewrite the checkpoint in place with one ``pwrite`` of a fixed-size line: called
        after every batch, it costs one system call instead of a new file and a rename, and a
        killed process still leaves either the old line or the new one."""
        line = json.dumps({"confirmed_seq": seq}).ljust(CHECKPOINT_BYTES - 1) + "\n"
        fresh = self._checkpoint_fd is None
        if self._checkpoint_fd is None:
            self._checkpoint_fd = os.open(self.directory / CHECKPOINT, os.O_RDWR | os.O_CREAT,
                                          0o600)
        os.pwrite(self._checkpoint_fd, line.encode(), 0)
        if fresh:  # a checkpoint left by an older version may be shorter or longer
            os.ftruncate(self._checkpoint_fd, CHECKPOINT_BYTES)

    # -- reading --------------------------------------------------------------------------

    def reader(self, after_seq: int) -> JournalReader:
        """A reader over every record with a sequence number above ``after_seq``."""
        first = self._segments[0].path
        return JournalReader(self, first, 0, after_seq)

    def reader_at_tail(self) -> JournalReader:
        """A reader starting at the next record to be appended."""
        path, offset = self.tail
        return JournalReader(self, path, offset, self.last_seq)

    def _segment_after(self, path: Path) -> Path | None:
        number = int(path.stem)
        later = [s.path for s in self._segments if s.number > number]
        return later[0] if later else None

    def _is_active(self, path: Path) -> bool:
        return path == self._segments[-1].path

    # -- segments -------------------------------------------------------------------------

    def _read_checkpoint(self) -> int:
        path = self.directory / CHECKPOINT
        try:
            return int(json.loads(path.read_text())["confirmed_seq"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("journal_checkpoint_unreadable", path=str(path), error=str(exc))
            return 0

    def _new_segment(self) -> None:
        """Create the next segment and make it the active one (:class:`StoreError` if the file
        cannot be created; nothing is left behind then, so a later attempt can retry)."""
        number = self._segments[-1].number + 1 if self._segments else 1
        path = self.directory / f"{number:010d}{SUFFIX}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create journal segment {path}: {exc}") from exc
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise StoreError(f"cannot create journal segment {path}: {exc}") from exc
        self._fd = fd
        self._segments.append(_Segment(number, path, None))
        self._size = 0

    def _abandon_segment(self) -> None:
        """Close the active segment for good (fsync what it holds); the next append starts a
        new one."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        except OSError as exc:
            log.error("journal_fsync_failed", error=str(exc))
        os.close(fd)

    def _delete_confirmed_segments(self) -> None:
        # the last segment stays, even abandoned: the next one is numbered after it, and the
        # tail and readers point into it
        keep: list[_Segment] = []
        closed = self._segments[:-1]
        for segment in closed:
            if segment.last_seq is None or segment.last_seq <= self.confirmed:
                segment.path.unlink(missing_ok=True)
            else:
                keep.append(segment)
        self._segments = keep + self._segments[len(closed) :]


def _last_seq_of(path: Path) -> int | None:
    last: int | None = None
    with path.open("rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                try:
                    last, _ = decode_line(line)
                except BadLine:
                    continue
    return last


class JournalReader:
    """Reads records back from the journal in order, from a given segment and offset.

    Lines that cannot be decoded (a line torn by a crash, the last of its segment) are skipped
    with a warning. An incomplete line at the end of the active segment is left for later.
    """

    def __init__(self, journal: Journal, path: Path, offset: int, after_seq: int) -> None:
        self._journal = journal
        self._path: Path | None = path
        self._offset = offset
        self._after_seq = after_seq
        self._file: BinaryIO | None = None

    def read(self, limit: int) -> list[tuple[int, Record]]:
        """Up to ``limit`` records ``(seq, record)`` not yet returned, oldest first."""
        out: list[tuple[int, Record]] = []
        while len(out) < limit and self._path is not None:
            f = self._open()
            if f is None:
                continue
            line = f.readline()
            if line.endswith(b"\n"):
                self._take(line, out)
                continue
            if self._journal._is_active(self._path):
                f.seek(-len(line), os.SEEK_CUR)  # incomplete: the writer is not done with it
                break
            if line:
                log.warning("journal_torn_line", segment=str(self._path), bytes=len(line))
            self._next_segment()
        return out

    def close(self) -> None:
        """Release the open segment file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _take(self, line: bytes, out: list[tuple[int, Record]]) -> None:
        try:
            seq, record = decode_line(line)
        except BadLine as exc:
            log.warning("journal_bad_line", segment=str(self._path), error=str(exc))
            return
        if seq > self._after_seq:
            self._after_seq = seq
            out.append((seq, record))

    def _open(self) -> BinaryIO | None:
        if self._file is None:
            assert self._path is not None
            try:
                self._file = self._path.open("rb")
            except FileNotFoundError:  # deleted once confirmed: nothing left to read in it
                self._next_segment()
                return None
            self._file.seek(self._offset)
        return self._file

    def _next_segment(self) -> None:
        assert self._path is not None
        self.close()
        self._path = self._journal._segment_after(self._path)
        self._offset = 0
