"""Files only this user may read: created with their final mode, replaced atomically."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` through a fresh temporary file created with ``mode`` (never
    readable by others, not even while being written), then renamed over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # O_EXCL below: a left-over file would keep its old mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_private(path: Path, mode: int = 0o600) -> None:
    """Create ``path`` empty with ``mode`` when it is missing; narrow a looser existing file to
    ``mode`` (a file created before this rule)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        if path.stat().st_mode & 0o777 & ~mode:
            path.chmod(mode)
    else:
        os.close(fd)
