"""The daemon as a child process, for integration and fault tests.

It runs ``python -m callcontrol --config FILE run`` so tests can SIGKILL it, restart it and
watch its ``/health`` like an operator would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from ruamel.yaml import YAML


def merge_config(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` deep-merged into it (mappings merge, other values replace)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = value
    return out


def write_config(source: Path, target: Path, update: Mapping[str, Any]) -> Path:
    """Copy the YAML config ``source`` to ``target`` with ``update`` deep-merged into it.

    Relative paths keep working: ``base_dir`` is pinned to the source's base folder.
    """
    yaml = YAML(typ="safe")
    data = yaml.load(source.read_text()) or {}
    base = Path(str(data.get("base_dir", ".")))
    data["base_dir"] = str(base if base.is_absolute() else (source.parent / base).resolve())
    data = merge_config(data, update)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w") as fh:
        yaml.dump(data, fh)
    return target


class DaemonApi:
    """The daemon's HTTP API with one bearer token: ``status, body = await api("GET", path)``."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str,
                 timeout: float = 10.0) -> None:
        self.session = session
        self.url = url
        self.token = token
        self.timeout = timeout

    async def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, json)`` of one request to ``path`` (``body`` sent as JSON)."""
        async with self.session.request(
            method, f"{self.url}{path}", json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        ) as resp:
            return resp.status, await resp.json()


class DaemonProcess:
    """``callcontrol run`` in a child process with its log in ``log_path``."""

    def __init__(self, config_file: Path, http_port: int, log_path: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.config_file = config_file
        self.http_port = http_port
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Base URL of the daemon's HTTP API."""
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self, timeout: float = 30.0) -> None:
        """Start the daemon and wait until ``/health`` answers 200."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "callcontrol", "--config", str(self.config_file), "run",
                stdout=log, stderr=log, env=self.env,
            )
        finally:
            log.close()
        await self.wait_healthy(timeout)

    async def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until ``/health`` answers 200; return its body."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: Any = None
        while loop.time() < deadline:
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, body = await self.health()
                last = body
                if status == 200:
                    return body  # type: ignore[no-any-return]
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"daemon not healthy after {timeout}s: {last}\n{self.log_tail()}")

    async def health(self) -> tuple[int, Any]:
        """``(status, body)`` of ``GET /health``."""
        async with aiohttp.ClientSession() as session, session.get(
            f"{self.url}/health", timeout=aiohttp.ClientTimeout(total=2)
        ) as resp:
            return resp.status, await resp.json()

    def kill(self) -> None:
        """SIGKILL the daemon (no clean-up of any kind)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the daemon and wait for it; return its exit code."""
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                raise
        return self.proc.returncode if self.proc.returncode is not None else -1

    async def wait_exit(self) -> int:
        """Wait for the process to end (after :meth:`kill`)."""
        assert self.proc is not None
        return await self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the daemon's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
