"""Databases for the store tests: a fresh SQLite file, or a fresh database on PostgreSQL.

PostgreSQL is a private server started once per session (callcontrol.testing.postgres), so CI
needs nothing running; with ``CALLCONTROL_TEST_DB_URL`` set (e.g.
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) the databases are made on that server
instead. Either way each test gets its own database, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from callcontrol.store.db import create_engine
from callcontrol.store.migrations import upgrade
from callcontrol.testing.postgres import BIN_DIR, PrivatePostgres


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of our own for the whole session."""
    if not (BIN_DIR / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {BIN_DIR}")
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


async def _admin(admin_url: str, sql: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(sql))
    finally:
        await engine.dispose()


async def _temp_database(admin_url: str) -> AsyncIterator[str]:
    name = f"cc_test_{uuid.uuid4().hex[:12]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        await upgrade(url)
        yield url
    finally:
        await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def private_pg_url(private_pg: PrivatePostgres) -> AsyncIterator[str]:
    """A migrated fresh database on the private server (tests may stop that server)."""
    async for url in _temp_database(private_pg.admin_url):
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated fresh database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/store.db"
        await upgrade(url)
        yield url
        return
    shared = os.environ.get("CALLCONTROL_TEST_DB_URL")
    admin_url = shared or request.getfixturevalue("private_pg").admin_url
    async for url in _temp_database(admin_url):
        yield url
