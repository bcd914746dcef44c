"""Fixtures shared by unit tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.store.db import create_engine
from callcontrol.store.migrations import upgrade


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask 022, under which a file created without a mode is world-readable."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite store in the test's folder (``store.db``)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/store.db"
    await upgrade(url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()
