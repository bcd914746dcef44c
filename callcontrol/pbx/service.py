"""Build the Asterisk instance a callcontrol :class:`Config` describes (used by ``make run``).

Ports come from the config: HTTP/ARI from ``asterisk.ari.url``, AMI from ``asterisk.ami.port``,
SIP and RTP from ``asterisk.sip_port`` / ``rtp_start`` / ``rtp_end``. Agent headsets come from
``agents`` and caller sources from ``callers``; all passwords are resolved from their SecretRefs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from callcontrol.config import Config, resolve_secret
from callcontrol.errors import ConfigError
from callcontrol.pbx.instance import AsteriskInstance
from callcontrol.pbx.ports import PbxPorts
from callcontrol.pbx.provision import Launcher, provision
from callcontrol.pbx.settings import HttpTls, PbxSettings, SipAccount


def settings_from_config(config: Config) -> PbxSettings:
    """The instance settings (with resolved secrets) for ``config``."""
    ast = config.asterisk
    http_port = urlsplit(ast.ari.url).port
    if http_port is None:
        raise ConfigError(f"asterisk.ari.url {ast.ari.url!r} must name a port")
    agents = tuple(
        SipAccount(a.endpoint, resolve_secret(config, a.password).get_secret_value())
        for a in config.agents
    )
    callers = tuple(
        SipAccount(c.id, resolve_secret(config, c.password).get_secret_value())
        for c in config.callers
    )
    return PbxSettings(
        name=ast.instance_name,
        ports=PbxPorts(
            sip=ast.sip_port,
            http=http_port,
            ami=ast.ami.port,
            rtp_start=ast.rtp_start,
            rtp_end=ast.rtp_end,
        ),
        ari_user=ast.ari.user,
        ari_password=resolve_secret(config, ast.ari.password).get_secret_value(),
        ami_user=ast.ami.user,
        ami_password=resolve_secret(config, ast.ami.password).get_secret_value(),
        app=ast.ari.app,
        bind=ast.bind,
        ami_permit=tuple(str(net) for net in ast.ami.permit),
        http_tls=HttpTls(ast.http_tls.cert_file, ast.http_tls.key_file, ast.http_tls.port)
        if ast.http_tls else None,
        agents=agents,
        callers=callers,
        overflow_dial=ast.overflow_dial,
        overflow_timeout=ast.overflow_timeout,
        fallback_prompt=ast.fallback_prompt,
    )


def instance_dir(launcher: Launcher, state_dir: Path, name: str) -> Path:
    """Host folder of instance ``name``: inside the chroot, or under ``state_dir`` natively."""
    if launcher.root is not None:
        return launcher.root / "srv" / "callcontrol" / name
    return state_dir.absolute() / "asterisk" / name


async def instance_for_config(
    config: Config, state_dir: Path, launcher: Launcher | None = None
) -> AsteriskInstance:
    """The (not yet started) instance for ``config``; provisions Asterisk when needed."""
    if launcher is None:
        root = config.asterisk.chroot
        launcher = Launcher(root=config.path(root)) if root is not None else await provision()
    settings = settings_from_config(config)
    binds = {
        "prompts": config.path(config.flows.dir) / "prompts",
        "recordings": config.path(config.asterisk.recordings_dir),
    }
    return AsteriskInstance(
        settings, launcher, instance_dir(launcher, state_dir, settings.name), binds
    )


async def start_for_config(
    config: Config, state_dir: Path, launcher: Launcher | None = None
) -> AsteriskInstance:
    """Start (or restart with fresh config) the instance ``config`` describes."""
    instance = await instance_for_config(config, state_dir, launcher)
    await instance.start()
    return instance
