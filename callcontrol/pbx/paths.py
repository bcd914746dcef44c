"""The one place that maps paths between the host and Asterisk.

Asterisk in a chroot sees only the root's files: ``/x`` inside is ``ROOT/x`` on the host, except
for the folders bind-mounted into it (the project's prompts and recordings), which keep their
host path on the host side. Natively (no root, no mounts) both sides are the same path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class PathMap:
    """Host <-> PBX path mapping of one instance.

    ``mounts`` maps a PBX-side folder to the host folder bind-mounted there.
    """

    root: Path | None = None
    mounts: dict[PurePosixPath, Path] = field(default_factory=dict)

    def to_pbx(self, host_path: Path | str) -> str:
        """The path Asterisk uses for ``host_path`` (e.g. for ``sound:`` or a recording)."""
        host = Path(host_path).absolute()
        for pbx, src in self.mounts.items():
            if host == src or host.is_relative_to(src):
                return str(pbx / host.relative_to(src))
        if self.root is None:
            return str(host)
        if not host.is_relative_to(self.root):
            raise ValueError(f"{host} is not visible to Asterisk (outside {self.root})")
        return str(PurePosixPath("/") / host.relative_to(self.root))

    def to_host(self, pbx_path: PurePosixPath | str) -> Path:
        """The host path of a file Asterisk names ``pbx_path``."""
        pbx = PurePosixPath(pbx_path)
        if not pbx.is_absolute():
            raise ValueError(f"{pbx}: a PBX path must be absolute")
        for target, src in self.mounts.items():
            if pbx == target or pbx.is_relative_to(target):
                return src / pbx.relative_to(target)
        if self.root is None:
            return Path(pbx)
        return self.root / pbx.relative_to("/")
