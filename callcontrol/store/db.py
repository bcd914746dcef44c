"""Engines and sessions for the store: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from callcontrol.private_files import create_private

SQLITE_BUSY_TIMEOUT_MS = 5000


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://``).

    SQLite gets WAL, ``synchronous=NORMAL`` and a busy timeout on every connection, and its
    file's folder is created; the file is created with mode 0600 (SQLite gives its ``-wal``
    and ``-shm`` files the database file's mode), like the journal: it holds callers' numbers.
    PostgreSQL connections are checked before use, so a restarted server is picked up again.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_database_files(Path(parsed.database))
        engine = _create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return _create_async_engine(url, **kwargs)


def _private_database_files(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    create_private(path)
    for suffix in ("-wal", "-shm"):  # left by an older version with a looser mode
        side = path.with_name(path.name + suffix)
        if side.exists():
            create_private(side)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine`` whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
