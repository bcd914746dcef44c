"""The journal's own small disk: a tmpfs mounted on the journal folder, filled on demand.

Mounting needs root (``mount -t tmpfs``); :meth:`JournalDisk.mount` says so plainly when it
cannot. :meth:`JournalDisk.fill` writes a filler file until the file system refuses
(ENOSPC); :meth:`JournalDisk.free` deletes it.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FILLER = ".faults-filler"
CHUNK = 1 << 20


class JournalDiskError(RuntimeError):
    """The tmpfs could not be mounted or unmounted."""


@dataclass
class JournalDisk:
    """A ``size_mb`` tmpfs on ``path`` (the daemon's ``database.journal_dir``)."""

    path: Path
    size_mb: int = 32
    mounted: bool = False

    @property
    def filler(self) -> Path:
        """The file that fills the disk."""
        return self.path / FILLER

    def mount(self) -> None:
        """Mount the tmpfs (the folder must be empty or absent)."""
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0700", "tmpfs",
             str(self.path)], capture_output=True, text=True, check=False, timeout=10)
        if done.returncode != 0:
            raise JournalDiskError(
                f"cannot mount a tmpfs on {self.path} (the journal_full fault needs root): "
                f"{done.stderr.strip()}")
        self.mounted = True

    def unmount(self) -> None:
        """Unmount (lazily, so a daemon still holding a file cannot block it)."""
        if not self.mounted:
            return
        done = subprocess.run(["umount", "-l", str(self.path)], capture_output=True, text=True,
                              check=False, timeout=10)
        if done.returncode != 0:
            raise JournalDiskError(f"cannot unmount {self.path}: {done.stderr.strip()}")
        self.mounted = False

    async def fill(self) -> dict[str, int]:
        """Write the filler until the disk is full; return bytes written and free after."""
        return await asyncio.to_thread(self._fill)

    async def free(self) -> None:
        """Delete the filler."""
        await asyncio.to_thread(self.filler.unlink, missing_ok=True)

    def _fill(self) -> dict[str, int]:
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            chunk = b"\0" * CHUNK
            while chunk:
                try:
                    written += os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    chunk = chunk[: len(chunk) // 2]
        finally:
            os.close(fd)
        return {"filler_bytes": written, "free_bytes": shutil.disk_usage(self.path).free}
