"""Alembic environment: runs on a connection handed over by :func:`upgrade`, or on its own
async engine when alembic's command line is used."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import callcontrol.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from callcontrol.store.db import create_engine

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
_url = context.config.get_main_option("sqlalchemy.url") or ""
if context.is_offline_mode():
    _run_offline(_url)
elif _connection is not None:
    _run(_connection)
else:
    asyncio.run(_run_async(_url))
