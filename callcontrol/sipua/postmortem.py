"""Native backtraces of a SIP peer that died of a signal.

A peer child runs pjsua2's C code in threads Python does not know (the conference bridge's
clock, the media event worker): when one of them crashes, Python's fault handler shows only
the Python threads. The client therefore starts each child in a private work directory, and
the child allows itself core dumps (:func:`allow_core_dumps`); after a crash,
:func:`native_backtrace` reads the core file there with gdb and returns every thread's stack,
so the failure report names the C function that crashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import sys
from pathlib import Path

_GDB_SECONDS = 60.0
_FRAMES_PER_THREAD = 25


def allow_core_dumps() -> None:
    """Called by the peer process first thing: let the kernel write a core file (into its
    work directory) when it crashes."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def _core_file(workdir: Path, pid: int) -> Path | None:
    for name in (f"core.{pid}", "core"):
        path = workdir / name
        if path.is_file():
            return path
    return None


def _core_pattern() -> str:
    pattern = Path("/proc/sys/kernel/core_pattern")
    return pattern.read_text().strip() if pattern.exists() else "unknown"


async def native_backtrace(workdir: Path, pid: int) -> str:
    """The crashed child's thread stacks from its core file in ``workdir`` (then deleted), or
    a line saying why there are none."""
    core = _core_file(workdir, pid)
    if core is None:
        return f"(no core file in {workdir}; kernel core_pattern: {_core_pattern()})"
    gdb = shutil.which("gdb")
    if gdb is None:
        core.unlink()
        return "(a core file was written, but gdb is not installed to read it)"
    process = await asyncio.create_subprocess_exec(
        gdb, "-batch", "-nx", "-q",
        "-ex", "info threads",
        "-ex", f"thread apply all bt {_FRAMES_PER_THREAD}",
        sys.executable, str(core),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), _GDB_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        return f"(gdb did not read {core} within {_GDB_SECONDS:.0f} s)"
    finally:
        core.unlink(missing_ok=True)
    return output.decode(errors="replace")
