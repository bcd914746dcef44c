"""Databases for the store tests: a fresh SQLite file, or a fresh database on PostgreSQL.

PostgreSQL is a private server started once per session (callcontrol.testing.postgres), so CI
needs nothing running; without PostgreSQL installed these tests fail (``make install`` brings
it). With ``CALLCONTROL_TEST_DB_URL`` set (e.g.
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) the databases are made on that server
instead. Either way each test gets its own database, dropped afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from callcontrol.store.migrations import upgrade
from callcontrol.testing.postgres import PrivatePostgres, temp_database


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of our own for the whole session."""
    with PrivatePostgres() as server:
        yield server


@asynccontextmanager
async def _migrated_database(admin_url: str) -> AsyncIterator[str]:
    async with temp_database(admin_url, "cc_test") as url:
        await upgrade(url)
        yield url


@pytest.fixture
async def private_pg_url(private_pg: PrivatePostgres) -> AsyncIterator[str]:
    """A migrated fresh database on the private server (tests may stop that server)."""
    async with _migrated_database(private_pg.admin_url) as url:
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
    async with _migrated_database(admin_url) as url:
        yield url
