"""Where recording files live: ``YYYY/MM/DD/<call-id>-<n>.wav`` under the recordings root.

A recording row keeps its path relative to the root (``2026/12/03/<call-id>-1.wav``), so the
root can move. :class:`RecordingPaths` is the only way from such a path to a file: the path must
have exactly that shape (no ``..``, no absolute path, no other names), no folder or file below
the root may be a symlink, and the result is always inside the root. Asterisk names the same
file through :class:`~callcontrol.pbx.paths.PathMap` (chroot, bind mounts, Docker).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from callcontrol.pbx.paths import PathMap

FORMAT = "wav"
CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""What a call id may look like to become a file name (UUID hex, Asterisk's ``1700000000.12``)."""
RELATIVE = re.compile(
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<call>[A-Za-z0-9][A-Za-z0-9._-]{0,127})"
    r"-(?P<n>[1-9]\d{0,5})\.wav"
)


class BadRecordingPath(ValueError):
    """A recording path that is not of the layout, or would lead outside the root."""


def relative_path(call_id: str, n: int, started_at: datetime) -> str:
    """``YYYY/MM/DD/<call-id>-<n>.wav`` for the ``n``-th recording of a call (day in UTC)."""
    if not CALL_ID.fullmatch(call_id):
        raise BadRecordingPath(f"call id {call_id!r} cannot name a recording")
    if not 1 <= n <= 999999:
        raise BadRecordingPath(f"recording number {n} out of range 1..999999")
    day = started_at.astimezone(UTC)
    return f"{day:%Y/%m/%d}/{call_id}-{n}.{FORMAT}"


class RecordingPaths:
    """The recordings root on the host, and how Asterisk sees it (``pbx``, default native)."""

    def __init__(self, root: Path, pbx: PathMap | None = None) -> None:
        self.root = root.resolve()
        self.pbx = pbx or PathMap()

    def resolve(self, relative: str) -> Path:
        """The host path of ``relative``; raise :class:`BadRecordingPath` when it is not of the
        layout or a component below the root is a symlink (the file itself need not exist)."""
        if not RELATIVE.fullmatch(relative):
            raise BadRecordingPath(f"{relative!r} is not a recording path (YYYY/MM/DD/ID-N.wav)")
        path = self.root
        for part in PurePosixPath(relative).parts:
            path = path / part
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                break
            if stat.S_ISLNK(mode):
                raise BadRecordingPath(f"{relative!r}: {path} is a symlink")
        if not path.is_relative_to(self.root):  # the layout makes this impossible; kept as a wall
            raise BadRecordingPath(f"{relative!r} leads outside {self.root}")
        return self.root / relative

    def for_pbx(self, relative: str) -> str:
        """The path Asterisk writes ``relative`` to (e.g. MixMonitor's file name)."""
        return self.pbx.to_pbx(self.resolve(relative))

    def partial(self, relative: str, extension: str) -> Path:
        """The hidden file Asterisk writes while ``relative`` is being recorded
        (``YYYY/MM/DD/.<call-id>-<n>.<extension>``): a dot file, so ``files()`` and
        ``recordings check`` leave it alone until it becomes the recording."""
        final = self.resolve(relative)
        return final.with_name(f".{final.stem}.{extension}")

    def prepare(self, relative: str) -> Path:
        """:meth:`resolve`, with the day's folder created for Asterisk to write in (the root's
        permissions and the umask decide who else may read it)."""
        path = self.resolve(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        return self.resolve(relative)  # again: a folder swapped for a symlink meanwhile is refused

    def files(self) -> Iterator[str]:
        """Every file below the root as a root-relative POSIX path, sorted, without following
        symlinks; dot files (``.gitkeep``) are left out. Symlinks are listed as files."""
        for top, dirs, names in os.walk(self.root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            base = Path(top)
            for name in sorted(names):
                if not name.startswith("."):
                    yield (base / name).relative_to(self.root).as_posix()
