"""One Asterisk process with the project's config: start, stop, restart, CLI.

An instance lives in one folder (``ROOT/srv/callcontrol/NAME`` inside the chroot, or
``STATE/asterisk/NAME`` natively) holding its rendered config and its run/log/spool/db folders.
The project's prompts and recordings folders are bind-mounted into it when Asterisk runs in a
chroot; :attr:`AsteriskInstance.paths` maps paths between the two sides. Asterisk runs in the
foreground (``-f``) as its own session, so it outlives the process that started it (``make
run``) and a test's Ctrl-C does not reach it; :meth:`stop` ends it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import aiohttp

from callcontrol.errors import CallControlError, PbxUnreachable
from callcontrol.pbx.paths import PathMap
from callcontrol.pbx.provision import Launcher
from callcontrol.pbx.render import MOH_TONE, render_config, write_config, write_moh_tone
from callcontrol.pbx.settings import PbxDirs, PbxSettings

# What Asterisk creates (the fallback ledger, recordings, its logs) is readable by its owner and
# group only: 0640. Group read, not 0600: a daemon running as another user in Asterisk's group
# must read the ledger and the recordings; nobody else may (callers' numbers, voices).
ASTERISK_UMASK = 0o027
ASTERISK_FILE_MODE = 0o640
STOCK_MOH = (PurePosixPath("/usr/share/asterisk/moh"), PurePosixPath("/var/lib/asterisk/moh"))


class PbxStartError(CallControlError):
    """Asterisk did not come up (the message carries the tail of its log)."""

    error_id = "pbx_start"


def _mounted_targets() -> set[Path]:
    targets = set()
    with open("/proc/self/mountinfo") as info:
        for line in info:
            target = line.split()[4].replace("\\040", " ")
            targets.add(Path(target))
    return targets


def _is_asterisk(pid: int, conf: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(arg.endswith(b"asterisk") for arg in cmdline) and conf.encode() in cmdline


async def _run(*argv: str, time_limit: float = 10.0) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), time_limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"{argv[0]} timed out after {time_limit:.0f} s"
    return proc.returncode or 0, out.decode(errors="replace")


class AsteriskInstance:
    """An Asterisk process running the project's config for one set of :class:`PbxSettings`.

    ``host_dir`` is the instance folder as the host sees it (inside ``launcher.root`` when there
    is one); ``binds`` names host folders to bind-mount into it: ``prompts`` and ``recordings``.
    """

    def __init__(
        self,
        settings: PbxSettings,
        launcher: Launcher,
        host_dir: Path,
        binds: Mapping[str, Path] | None = None,
    ) -> None:
        self.settings = settings
        self.launcher = launcher
        self.host_dir = host_dir.absolute()
        root = launcher.root
        if root is not None and not self.host_dir.is_relative_to(root):
            raise ValueError(f"{host_dir} must be inside the Asterisk root {root}")
        pbx_base = (
            PurePosixPath("/") / self.host_dir.relative_to(root)
            if root is not None
            else PurePosixPath(self.host_dir)
        )
        self.dirs = PbxDirs(pbx_base)
        mounts: dict[PurePosixPath, Path] = {}
        if root is not None:
            for name, src in (binds or {}).items():
                if name not in ("prompts", "recordings"):
                    raise ValueError(f"unknown bind {name!r}")
                mounts[getattr(self.dirs, name)] = src.absolute()
        self.paths = PathMap(root=root, mounts=mounts)
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- addresses -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """Address clients on this machine use (the bind address, or loopback for 0.0.0.0)."""
        return "127.0.0.1" if self.settings.bind == "0.0.0.0" else self.settings.bind

    @property
    def sip_port(self) -> int:
        """PJSIP UDP port."""
        return self.settings.ports.sip

    @property
    def http_port(self) -> int:
        """HTTP port serving ARI."""
        return self.settings.ports.http

    @property
    def ami_port(self) -> int:
        """AMI TCP port."""
        return self.settings.ports.ami

    @property
    def ari_url(self) -> str:
        """Base URL of the HTTP server (ARI lives under ``/ari``)."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def spool_recording_dir(self) -> Path:
        """Host path of the folder where ARI recordings land."""
        return self.paths.to_host(self.dirs.spool / "recording")

    @property
    def log_file(self) -> Path:
        """Host path of Asterisk's console output."""
        return self.paths.to_host(self.dirs.log / "console.log")

    # ---- process ---------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """PID of the running Asterisk (also one started by another process), else None."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        try:
            pid = int(self.paths.to_host(self.dirs.run / "asterisk.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_asterisk(pid, str(self.dirs.asterisk_conf)) else None

    async def start(self, time_limit: float = 30.0) -> None:
        """Render the config, start Asterisk, wait until fully booted and ARI answers."""
        if self._proc is not None and self._proc.poll() is None:
            return
        if self.pid is not None:  # left running by an earlier run: restart with fresh config
            await self.stop()
        await asyncio.to_thread(self._prepare)
        await self._mount()
        self._proc = await asyncio.to_thread(self._spawn)
        try:
            await self._wait_booted(time_limit)
        except PbxStartError:
            await self.stop()
            raise

    async def stop(self, time_limit: float = 10.0) -> None:
        """Stop gracefully (``core stop now``), kill by PID if that fails; unmount binds."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(PbxUnreachable):
                await self.cli("core stop now", time_limit=min(5.0, time_limit))
            if not await self._wait_exit(pid, time_limit):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                await self._wait_exit(pid, 5.0)
        self._proc = None
        await self._unmount()

    async def restart(self, time_limit: float = 30.0) -> None:
        """Stop, then start again with freshly rendered config."""
        await self.stop()
        await self.start(time_limit)

    async def cli(self, command: str, time_limit: float = 10.0) -> str:
        """Run one CLI command through this instance's control socket; return its output."""
        code, out = await _run(
            *self.launcher.command("-C", str(self.dirs.asterisk_conf), "-rx", command),
            time_limit=time_limit,
        )
        if code != 0:
            raise PbxUnreachable(f"asterisk -rx {command!r} failed ({code}): {out.strip()}")
        return out

    def remove(self) -> None:
        """Delete the instance folder (after :meth:`stop`); refuses while anything is mounted."""
        if self.pid is not None:
            raise CallControlError("stop the instance before removing it")
        if any(t == self.host_dir or t.is_relative_to(self.host_dir) for t in _mounted_targets()):
            raise CallControlError(f"refusing to remove {self.host_dir}: a mount is below it")
        shutil.rmtree(self.host_dir, ignore_errors=True)

    # ---- internals -------------------------------------------------------------------------
    def _prepare(self) -> None:
        for folder in self.dirs.writable():
            self.paths.to_host(folder).mkdir(parents=True, exist_ok=True)
        stock = [d for d in STOCK_MOH if any(self.paths.to_host(d).glob("*.*"))]
        moh_dir = stock[0] if stock else self.dirs.moh
        if not stock:
            write_moh_tone(self.paths.to_host(self.dirs.moh / MOH_TONE))
        files = render_config(self.settings, self.dirs, str(moh_dir))
        write_config(files, self.paths.to_host(self.dirs.etc))

    async def _mount(self) -> None:
        await self._unmount()  # idempotent: drop what an earlier run may have left
        for target, src in self.paths.mounts.items():
            src.mkdir(parents=True, exist_ok=True)
            host_target = self._mount_point(target)
            host_target.mkdir(parents=True, exist_ok=True)
            code, out = await _run("mount", "--bind", str(src), str(host_target))
            if code != 0:
                raise PbxStartError(f"cannot bind-mount {src} on {host_target}: {out.strip()}")

    async def _unmount(self) -> None:
        mounted = _mounted_targets()
        for target in self.paths.mounts:
            host_target = self._mount_point(target)
            while host_target in mounted:
                code, out = await _run("umount", str(host_target))
                if code != 0:
                    raise CallControlError(f"cannot unmount {host_target}: {out.strip()}")
                mounted = _mounted_targets()

    def _mount_point(self, target: PurePosixPath) -> Path:
        assert self.launcher.root is not None  # mounts exist only with a chroot
        return self.launcher.root / target.relative_to("/")

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.paths.to_host(self.dirs.control_socket).unlink(missing_ok=True)
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, ASTERISK_FILE_MODE)
        with os.fdopen(fd, "ab") as log:
            return subprocess.Popen(
                self.launcher.command("-f", "-n", "-g", "-C", str(self.dirs.asterisk_conf)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=ASTERISK_UMASK,
            )

    def _booting(self) -> bool:
        """True until the control socket appears."""
        return not self.paths.to_host(self.dirs.control_socket).exists()

    async def _wait_booted(self, time_limit: float) -> None:
        deadline = time.monotonic() + time_limit
        while self._booting():
            if self._proc is None or self._proc.poll() is not None:
                raise PbxStartError(f"asterisk exited at start: {self._log_tail()}")
            if time.monotonic() > deadline:
                raise PbxStartError(
                    f"no control socket after {time_limit:.0f} s: {self._log_tail()}"
                )
            await asyncio.sleep(0.05)
        try:
            await self.cli("core waitfullybooted", time_limit=max(1.0, deadline - time.monotonic()))
        except PbxUnreachable as exc:
            raise PbxStartError(f"{exc}: {self._log_tail()}") from exc
        await self._wait_ari(deadline)

    async def _wait_ari(self, deadline: float) -> None:
        token = f"{self.settings.ari_user}:{self.settings.ari_password}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(token).decode()}
        url = f"{self.ari_url}/ari/asterisk/info"
        last = "no answer"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                try:
                    async with http.get(url, headers=headers) as resp:
                        if resp.status == 200:
                            return
                        last = f"HTTP {resp.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = type(exc).__name__
                await asyncio.sleep(0.1)
        raise PbxStartError(f"ARI at {url} did not answer: {last}")

    async def _wait_exit(self, pid: int, time_limit: float) -> bool:
        deadline = time.monotonic() + time_limit
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.pid == pid:
                if self._proc.poll() is not None:
                    return True
            elif not _is_asterisk(pid, str(self.dirs.asterisk_conf)):
                return True
            await asyncio.sleep(0.05)
        return False

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])
