"""A private PostgreSQL server for tests: its own data folder, free port and socket folder.

The store and fault tests use it so that CI needs nothing running and a test may stop the
server (to make the database unavailable) without touching anyone else's: the shared server on
127.0.0.1:5432 is never used here. The binaries are those of Debian's ``postgresql`` package
(``make install`` installs it), found under ``/usr/lib/postgresql/<major>/bin`` whatever the
major version; without them :class:`PrivatePostgres` raises, so a test that needs PostgreSQL
fails rather than skips. initdb refuses to run as root, so as root every server command runs as
the ``postgres`` user (``runuser``)::

    with PrivatePostgres() as pg:
        url = pg.url("postgres")   # postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres
        pg.stop(); ...; pg.start()

:func:`temp_database` makes a throw-away database on such a server (or any other).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from callcontrol.store.db import create_engine

DEBIAN_ROOT = Path("/usr/lib/postgresql")
"""Where Debian's packages put each major version's server binaries (``<major>/bin``)."""
SUPERUSER = "postgres"


def find_bin_dir(root: Path = DEBIAN_ROOT) -> Path:
    """The ``bin`` folder of the newest PostgreSQL major version installed under ``root``.

    Raises FileNotFoundError, naming the package to install, when there is none.
    """
    found = [initdb.parent for initdb in root.glob("*/bin/initdb")]
    if not found:
        raise FileNotFoundError(
            f"no PostgreSQL server binaries in {root}/<major>/bin: install Debian's "
            "postgresql package (make install does)"
        )
    return max(found, key=lambda bin_dir: _major_version(bin_dir.parent.name))


def _major_version(name: str) -> tuple[int, ...]:
    """``"15"`` -> (15,), ``"9.6"`` -> (9, 6); names that are not versions sort first."""
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return ()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivatePostgres:
    """One PostgreSQL server in a temporary folder, on a free port of 127.0.0.1 (binaries from
    ``bin_dir``, by default :func:`find_bin_dir`).

    :meth:`start` creates the cluster the first time; :meth:`stop` and :meth:`start` may be
    repeated (same port, same data); :meth:`cleanup` stops it and deletes the folder.
    """

    def __init__(self, bin_dir: Path | None = None, port: int | None = None) -> None:
        bin_dir = bin_dir or find_bin_dir()
        if not (bin_dir / "initdb").exists():
            raise FileNotFoundError(f"no PostgreSQL binaries in {bin_dir}")
        self.bin_dir = bin_dir
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="callcontrol-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log_file = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        self._initialised = False
        self.running = False

    @property
    def admin_url(self) -> str:
        """URL of the ``postgres`` database (for creating and dropping test databases)."""
        return self.url("postgres")

    def url(self, database: str) -> str:
        """The SQLAlchemy async URL of ``database`` on this server."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server (creating the cluster first if needed); return once it accepts
        connections."""
        if not self._initialised:
            self._init()
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "30",
            "-o", f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            "start",
        )  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stop the server now (``fast``: open connections are cut)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
            self.running = False

    def cleanup(self) -> None:
        """Stop the server and delete its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def _init(self) -> None:
        self.socket_dir.mkdir()
        if self._as_postgres:
            user = pwd.getpwnam(SUPERUSER)
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust",
            "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        self._initialised = True

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.root, check=False)
        if result.returncode != 0:
            log = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log}"
            )


async def admin_execute(admin_url: str, sql: str) -> None:
    """Run ``sql`` outside a transaction (e.g. ``CREATE DATABASE``) on ``admin_url``."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(sql))
    finally:
        await engine.dispose()


@asynccontextmanager
async def temp_database(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """A fresh, empty database ``PREFIX_<random>`` on the server of ``admin_url``; yields its
    URL and drops it afterwards (cutting any connection still open)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
