"""Files holding callers' data or secrets are private from their creation (issue 11): the
SQLite database and its -wal/-shm, the fallback ledger's state file, the token file, like the
journal; Asterisk itself creates with umask 027 (its files 0640)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from unittest import mock

import pytest
import sqlalchemy as sa

from callcontrol.api.auth import TokenStore
from callcontrol.fallback_ledger import LEDGER_NAME, STATE_NAME
from callcontrol.pbx import instance as pbx_instance
from callcontrol.private_files import create_private, write_private
from callcontrol.store.db import create_engine
from tests.unit.test_fallback_ledger import Store

pytestmark = pytest.mark.usefixtures("loose_umask")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_sqlite_database_and_its_wal_and_shm_are_0600(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'callcontrol.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (a INTEGER)"))
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            files = sorted(p.name for p in (tmp_path / "var").iterdir())
            assert files == ["callcontrol.db", "callcontrol.db-shm", "callcontrol.db-wal"]
            assert {f: oct(mode(tmp_path / "var" / f)) for f in files} == dict.fromkeys(
                files, "0o600")
    finally:
        await engine.dispose()


async def test_an_older_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    for name in ("old.db", "old.db-wal"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    await engine.dispose()
    assert (mode(tmp_path / "old.db"), mode(tmp_path / "old.db-wal")) == (0o600, 0o600)


async def test_the_fallback_ledger_state_file_is_0600(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        ledger = store.ledger()
        ledger._since()
        assert mode(tmp_path / "journal" / STATE_NAME) == 0o600
        assert ledger.path.name == LEDGER_NAME
    finally:
        await store.engine.dispose()


def test_the_token_file_is_0600(tmp_path: Path) -> None:
    TokenStore(tmp_path / "tokens.json").create("a", "admin")
    assert mode(tmp_path / "tokens.json") == 0o600


def test_private_helpers_never_widen_and_replace_atomically(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, "new")
    assert (target.read_text(), mode(target)) == ("new", 0o600)
    create_private(target)
    assert target.read_text() == "new"  # an existing file keeps its text
    tight = tmp_path / "tight"
    tight.write_text("")
    tight.chmod(0o400)
    create_private(tight)
    assert mode(tight) == 0o400  # never widened


def test_asterisk_is_started_with_umask_027_and_its_console_log_is_0640(
    tmp_path: Path,
) -> None:
    """What Asterisk creates (the fallback ledger, recordings) is 0640: group-readable, for a
    daemon running as another user in Asterisk's group; nobody else reads it."""
    inst = mock.Mock()
    inst.log_file = tmp_path / "console.log"
    inst.paths.to_host.return_value = tmp_path / "asterisk.ctl"
    inst.launcher.command.return_value = ["true"]
    with mock.patch.object(subprocess, "Popen") as popen:
        pbx_instance.AsteriskInstance._spawn(inst)
    assert popen.call_args.kwargs["umask"] == 0o027
    assert mode(inst.log_file) == 0o640
    made = subprocess.run(["sh", "-c", "umask; touch ledger"], cwd=tmp_path, check=True,
                          umask=pbx_instance.ASTERISK_UMASK, capture_output=True, text=True)
    assert made.stdout.strip() == "0027" and mode(tmp_path / "ledger") == 0o640
