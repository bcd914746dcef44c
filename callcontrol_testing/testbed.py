"""An isolated Asterisk on free ports with generated credentials: for tests and tools.

:func:`start_testbed` writes per-run secrets into ``work_dir/secrets`` and a callcontrol
config file ``work_dir/callcontrol.yaml`` pointing at a new instance (free ports, SQLite store,
journal and recordings under ``work_dir``), starts the instance and returns a
:class:`PbxTestbed` with everything a test needs. ``testbed.config`` (loaded from
``testbed.config_file``) is what a daemon under test should run with.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from callcontrol.config import Config, load_config
from callcontrol.pbx.instance import AsteriskInstance
from callcontrol.pbx.paths import PathMap
from callcontrol.pbx.ports import allocate_ports, free_port
from callcontrol.pbx.provision import Launcher, provision
from callcontrol.pbx.service import instance_dir, instance_for_config
from callcontrol.pbx.settings import SipAccount

PROJECT = Path(__file__).resolve().parents[1]
CUSTOMER_NUMBERS = ("0612345678",)
"""Caller sources every testbed has besides ``caller``, named by a national phone number (with
``site.country_code: "39"`` and an empty ``national_prefix`` it is ``+390612345678``): calls
from them carry a caller id a customer history can find."""


@dataclass
class PbxTestbed:
    """A running test instance and the credentials to use it (secrets hidden from repr)."""

    instance: AsteriskInstance
    config: Config
    agents: dict[str, SipAccount]  # agent id -> headset endpoint + password
    caller: SipAccount  # the caller source allowed into callcontrol-inbound
    work_dir: Path
    config_file: Path  # the YAML ``config`` was loaded from (for ``callcontrol run --config``)
    customers: dict[str, SipAccount] = field(default_factory=dict)
    """Caller sources named by a phone number (the caller id Asterisk stores): number ->
    account (:data:`CUSTOMER_NUMBERS`)."""

    @property
    def sip_host(self) -> str:
        """Host SIP peers send to."""
        return self.instance.host

    @property
    def sip_port(self) -> int:
        """PJSIP UDP port."""
        return self.instance.sip_port

    @property
    def ari_url(self) -> str:
        """HTTP base URL (ARI under ``/ari``)."""
        return self.instance.ari_url

    @property
    def ari_user(self) -> str:
        """ARI user name."""
        return self.instance.settings.ari_user

    @property
    def ari_password(self) -> str:
        """ARI password (generated per run)."""
        return self.instance.settings.ari_password

    @property
    def ami_port(self) -> int:
        """AMI port on :attr:`sip_host`."""
        return self.instance.ami_port

    @property
    def ami_user(self) -> str:
        """AMI user name."""
        return self.instance.settings.ami_user

    @property
    def ami_password(self) -> str:
        """AMI secret (generated per run)."""
        return self.instance.settings.ami_password

    @property
    def app(self) -> str:
        """The Stasis application name the dialplan hands calls to."""
        return self.instance.settings.app

    @property
    def paths(self) -> PathMap:
        """Host <-> Asterisk path mapping."""
        return self.instance.paths

    async def stop(self, remove: bool = True) -> None:
        """Stop Asterisk, unmount, and delete the instance folder unless ``remove`` is False."""
        await self.instance.stop()
        if remove:
            self.instance.remove()


def generated_secret(folder: Path, name: str) -> dict[str, str]:
    """Generate one secret into ``folder/name`` and return its SecretRef data."""
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(18) + "\n")
    return {"file": str(path)}


def write_testbed_config(
    work_dir: Path,
    name: str,
    spool_recording_dir: Path,
    agent_ids: tuple[str, ...] = ("a1", "a2"),
    bind: str = "127.0.0.1",
    flows_dir: Path = PROJECT / "ivr_flows",
) -> Path:
    """Write ``work_dir/callcontrol.yaml`` for an instance on free ports; secrets go to
    ``work_dir/secrets`` (one file each, mode 0600). Returns the file's path.

    Asterisk plays prompt files from ``flows_dir/prompts`` (bind-mounted when it runs in a
    root), so a daemon on flows of its own must name them here."""
    work_dir = work_dir.absolute()
    folder = work_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    ports = allocate_ports(bind)
    data = {
        "base_dir": str(work_dir),
        "asterisk": {
            "instance_name": name,
            "bind": bind,
            "sip_port": ports.sip,
            "rtp_start": ports.rtp_start,
            "rtp_end": ports.rtp_end,
            "ari": {
                "url": f"http://{bind}:{ports.http}",
                "password": generated_secret(folder, "ari"),
                "app": "callcontrol",
            },
            "ami": {"host": bind, "port": ports.ami, "password": generated_secret(folder, "ami")},
            "recordings_dir": str(work_dir / "recordings"),
            "spool_recording_dir": str(spool_recording_dir),
        },
        "database": {
            "url": f"sqlite+aiosqlite:///{work_dir / 'callcontrol.db'}",
            "journal_dir": str(work_dir / "journal"),
        },
        "http": {"port": free_port(bind), "tokens_file": str(work_dir / "tokens.json")},
        "flows": {"dir": str(flows_dir.absolute()), "watch": False},
        "agents": [
            {
                "id": agent_id,
                "name": f"Agent {agent_id}",
                "endpoint": f"agent-{agent_id}",
                "password": generated_secret(folder, f"agent-{agent_id}"),
            }
            for agent_id in agent_ids
        ],
        "callers": [{"id": name, "password": generated_secret(folder, f"caller-{name}")}
                    for name in ("caller", *CUSTOMER_NUMBERS)],
        "run": {"pid_file": str(work_dir / "run" / "callcontrol.pid")},
    }
    path = work_dir / "callcontrol.yaml"
    path.write_text(json.dumps(data, indent=2) + "\n")  # JSON is YAML
    return path


async def start_testbed(
    work_dir: Path,
    name: str,
    agent_ids: tuple[str, ...] = ("a1", "a2"),
    launcher: Launcher | None = None,
    flows_dir: Path = PROJECT / "ivr_flows",
) -> PbxTestbed:
    """Start an isolated instance called ``name`` (unique per machine) and return its testbed
    (prompt files from ``flows_dir/prompts``, see :func:`write_testbed_config`)."""
    launcher = launcher or await provision()
    spool = instance_dir(launcher, work_dir, name) / "spool" / "recording"
    config_file = await asyncio.to_thread(
        write_testbed_config, work_dir, name, spool, agent_ids, flows_dir=flows_dir
    )
    config = await asyncio.to_thread(load_config, config_file, {})
    instance = await instance_for_config(config, work_dir, launcher)
    await instance.start()
    by_name = {a.username: a for a in instance.settings.agents}
    agents = {a.id: by_name[a.endpoint] for a in config.agents}
    callers = {a.username: a for a in instance.settings.callers}
    customers = {number: callers[number] for number in CUSTOMER_NUMBERS}
    return PbxTestbed(instance, config, agents, callers["caller"], config.base_dir, config_file,
                      customers)
