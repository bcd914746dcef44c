"""Where the tests find PostgreSQL: the newest major version of Debian's packages, by globbing."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcontrol.testing.postgres import find_bin_dir


def _install(root: Path, version: str) -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "initdb").touch()
    return bin_dir


def test_the_newest_major_version_wins_numerically(tmp_path: Path) -> None:
    _install(tmp_path, "9.6")
    _install(tmp_path, "15")
    newest = _install(tmp_path, "17")
    (tmp_path / "18" / "bin").mkdir(parents=True)  # client only: no server binaries
    assert find_bin_dir(tmp_path) == newest


def test_no_server_binaries_names_the_package_to_install(tmp_path: Path) -> None:
    (tmp_path / "15" / "bin").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="postgresql package"):
        find_bin_dir(tmp_path)
