"""Find (or build once) Asterisk 22 and say how to run it.

``scripts/provision-asterisk.sh`` does the work: it uses an ``asterisk`` 22 on PATH, or builds
and caches a Debian sid root, mounts its /proc and /dev, and prints ``native`` or the root's
path on its last line. :func:`provision` runs it and returns a :class:`Launcher`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from callcontrol.errors import CallControlError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "provision-asterisk.sh"
ASTERISK = "/usr/sbin/asterisk"


class ProvisionError(CallControlError):
    """Asterisk 22 could not be provided (the script failed or printed nonsense)."""

    error_id = "pbx_provision"


@dataclass(frozen=True)
class Launcher:
    """How to run the ``asterisk`` binary: natively, or inside a chroot at ``root``."""

    root: Path | None = None

    def command(self, *args: str) -> list[str]:
        """The argv that runs ``asterisk ARGS`` (paths in ARGS are PBX-side paths)."""
        if self.root is None:
            return ["asterisk", *args]
        return ["chroot", str(self.root), ASTERISK, *args]


def parse_script_output(stdout: str) -> Launcher:
    """Turn the script's last line (``native`` or a root path) into a :class:`Launcher`."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ProvisionError("provision-asterisk.sh printed nothing")
    last = lines[-1]
    if last == "native":
        return Launcher()
    root = Path(last)
    if not root.is_absolute():
        raise ProvisionError(f"provision-asterisk.sh printed an unexpected line: {last!r}")
    return Launcher(root=root)


async def provision(script: Path = SCRIPT, time_limit: float = 900.0) -> Launcher:
    """Run the provisioning script (fast when cached) and return the launcher it chose."""
    proc = await asyncio.create_subprocess_exec(
        "bash", str(script), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), time_limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ProvisionError(f"{script} took more than {time_limit:.0f} s") from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        raise ProvisionError(f"{script} failed ({proc.returncode}): " + " | ".join(tail))
    launcher = parse_script_output(out.decode())
    if launcher.root is not None and not (launcher.root / ASTERISK.lstrip("/")).exists():
        raise ProvisionError(f"{launcher.root} holds no {ASTERISK}")
    return launcher
