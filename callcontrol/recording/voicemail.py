"""Voicemail messages: recorded by Asterisk into its spool, then moved into the recordings tree.

A flow's ``record`` step needs what only Asterisk's own recording (ARI ``channels/{id}/record``)
does: the beep, the key that ends the message, the silence that ends it and tells an empty one.
That recording can only be written below Asterisk's ``spool/recording`` (Asterisk refuses any
name leading elsewhere), so a message goes there first, under a name derived from its row's
path (:func:`spool_name`), and is moved into the tree when it ends::

    row written (policy ``voicemail``) --> Asterisk records spool/recording/vm-<call-id>-<n>.wav
        --> ended --> moved to the row's hidden file (.<call-id>-<n>.wav beside the final name)
        --> sealed like any recording (renamed, figures on the row)

Since the name derives from the row, recovery after a crash finds a message left in the spool
from the row alone. The spool is named as the daemon sees it (``asterisk.spool_recording_dir``,
else the instance's folder through the path mapping); it may be another file system than the
tree (a container's volume, Asterisk's root), or one the daemon may only read: the move then
copies (and deletes the source when it may).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from callcontrol.logging import get_logger

log = get_logger(__name__)

PREFIX = "vm-"
"""Names of messages in Asterisk's spool start with this."""
EXTENSION = "wav"
"""What Asterisk adds to a recording's name (the ``format`` the message is recorded in)."""


def spool_name(relative: str) -> str:
    """The name Asterisk records the message of row path ``relative`` under
    (``vm-<call-id>-<n>``: no folder, so ARI's live-recording URLs hold it in one segment)."""
    return PREFIX + PurePosixPath(relative).stem


def spool_file(spool: Path, name: str) -> Path:
    """Where a message recorded as ``name`` lies in the spool folder ``spool`` (host view)."""
    return spool / f"{name}.{EXTENSION}"


def bring_in(source: Path, partial: Path) -> bool:
    """Move the finished message ``source`` to ``partial`` (the recording's hidden file in the
    tree). When it cannot be renamed (another file system, a spool the daemon may read but not
    change) it is copied beside ``partial`` and renamed in, and the source deleted when the
    daemon may (else logged: the copy in the tree is the recording). False when there is no
    ``source`` (Asterisk wrote nothing)."""
    if not source.exists():
        return False
    try:
        os.replace(source, partial)
        return True
    except OSError as exc:
        log.info("voicemail_copied", source=str(source), reason=str(exc))
    copy = partial.with_name(f"{partial.name}.copy")
    shutil.copyfile(source, copy)
    os.replace(copy, partial)
    try:
        source.unlink()
    except OSError as exc:
        log.warning("voicemail_left_in_spool", source=str(source), error=str(exc))
    return True
