"""`make run` / `make stop` as the README promises, in a copy of the repo on free ports.

The copy holds the files git knows or would add (tracked + untracked, not ignored), so it sees
the working tree without any var/ state; a developer's own `make run` may run beside it. The
test runs the real thing: install checks, Asterisk, the supervised daemon, a real SIP call.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callcontrol import audio
from callcontrol.config import load_config
from callcontrol.pbx.ports import allocate_ports, free_port
from callcontrol.pbx.service import instance_for_config
from callcontrol.sipua.dial import read_env_file

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path("config/callcontrol.yaml")


@dataclass
class Demo:
    """A `make run` in a copy of the repo."""

    root: Path
    env: dict[str, str]
    output: str
    sip_port: int
    http_port: int

    def make(self, target: str, seconds: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", target], cwd=self.root, env=self.env,
            capture_output=True, text=True, timeout=seconds, check=False,
        )

    def pid(self, name: str) -> int | None:
        try:
            return int((self.root / "var" / "run" / name).read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def local_env(self) -> dict[str, str]:
        return read_env_file(self.root / "var" / "local.env")


def copy_repo(dest: Path) -> None:
    """Copy the files git tracks or would add (not ignored) from the repo into ``dest``."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout
    for name in filter(None, listing.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def health_status(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait_until(predicate: object, seconds: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.1)


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def remove_instance(root: Path) -> None:
    """Delete the stopped instance's folder (inside the shared Asterisk root)."""
    environ = read_env_file(root / "var" / "local.env")
    config = load_config(root / CONFIG, environ)
    instance = asyncio.run(instance_for_config(config, root / "var" / "asterisk"))
    asyncio.run(instance.stop())
    instance.remove()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`make run` in a fresh copy of the repo on free ports; `make stop` at the end."""
    root = tmp_path_factory.mktemp("make-run")
    copy_repo(root)
    ports = allocate_ports()
    http_port = free_port()
    env = {
        **os.environ,
        "DEMO_SIP_PORT": str(ports.sip),
        "DEMO_HTTP_PORT": str(http_port),
        "DEMO_ARI_PORT": str(ports.http),
        "DEMO_AMI_PORT": str(ports.ami),
        "DEMO_RTP_START": str(ports.rtp_start),
        "DEMO_INSTANCE": f"mkrun-{os.getpid()}",
        "PYTHON": sys.executable,
    }
    for key in [k for k in env if k.startswith("CALLCONTROL")]:
        del env[key]
    started = Demo(root, env, "", ports.sip, http_port)
    try:
        run = started.make("run", 120)
        started.output = run.stdout
        assert run.returncode == 0, f"make run failed:\n{run.stdout}\n{run.stderr}"
        yield started
    finally:
        started.make("stop", 60)
        remove_instance(root)


def test_make_run_prints_how_to_call_and_serves_health(demo: Demo) -> None:
    out = demo.output
    assert "callcontrol dial 100 --record out.wav" in out
    assert f"sip:100@127.0.0.1:{demo.sip_port}" in out
    assert f"curl http://127.0.0.1:{demo.http_port}/health" in out
    assert "make stop" in out
    assert health_status(demo.http_port) == 200
    env = demo.local_env
    for key in ("SIP_HOST", "SIP_PORT", "DEMO_CALLER_USER", "DEMO_CALLER_PASSWORD",
                "CALLCONTROL_ARI_PASSWORD", "CALLCONTROL_AMI_PASSWORD"):
        assert env.get(key), key
    for agent in ("ALICE", "BOB", "CAROL", "DAVE"):
        assert env[f"AGENT_{agent}_USER"] == agent.lower()
        assert len(env[f"AGENT_{agent}_PASSWORD"]) >= 16
    assert env["SIP_PORT"] == str(demo.sip_port)
    for private in ("local.env", "log/callcontrol.log", "callcontrol.db", "tokens.json"):
        assert (demo.root / "var" / private).stat().st_mode & 0o077 == 0, private
    # the demo config turns the demo CRM on (off by default), for this machine
    with urllib.request.urlopen(
            f"http://127.0.0.1:{demo.http_port}/demo/crm/customers/123456", timeout=5) as crm:
        assert json.loads(crm.read())["account"] == "123456"
    assert (demo.root / "var" / "admin.token").read_text().strip()
    # secrets stay out of the printed instructions
    assert env["DEMO_CALLER_PASSWORD"] not in out


def test_dial_the_hotline_hears_the_welcome(demo: Demo) -> None:
    record = demo.root / "out.wav"
    dial = subprocess.run(
        [sys.executable, "-m", "callcontrol", "dial", "100", "--record", str(record),
         "--hangup-after", "5"],
        cwd=demo.root, env={**demo.env, "PYTHONPATH": str(demo.root)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert dial.returncode == 0, f"{dial.stdout}\n{dial.stderr}"
    assert "answered" in dial.stdout
    assert audio.rms(record) > audio.SILENCE_FLOOR, dial.stdout


def test_supervisor_restarts_a_killed_daemon(demo: Demo) -> None:
    first = demo.pid("callcontrol.pid")
    assert alive(first)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not alive(first), 5, "the killed daemon to go")
    killed_at = time.monotonic()
    wait_until(lambda: demo.pid("callcontrol.pid") not in (None, first), 10, "a new daemon")
    wait_until(lambda: health_status(demo.http_port) == 200, 20, "/health 200 again")
    assert time.monotonic() - killed_at < 15


def test_make_stop_ends_everything(demo: Demo) -> None:
    supervisor = demo.pid("supervisor.pid")
    daemon = demo.pid("callcontrol.pid")
    asterisk = subprocess.run(
        [sys.executable, "-m", "callcontrol.pbx", "status", "--config", str(CONFIG),
         "--state-dir", "var/asterisk"],
        cwd=demo.root, env={**demo.env, **demo.local_env, "PYTHONPATH": str(demo.root)},
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert asterisk.stdout.startswith("running"), asterisk.stdout + asterisk.stderr
    asterisk_pid = int(asterisk.stdout.split()[1])
    assert alive(supervisor) and alive(daemon) and alive(asterisk_pid)
    stop = demo.make("stop", 60)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    for pid in (supervisor, daemon, asterisk_pid):
        assert not alive(pid), pid
    assert health_status(demo.http_port) == 0
