"""The daemon's one typed configuration, loaded once from YAML plus environment overrides.

Every bad field is reported with its place in the file (``FILE:LINE:COL: message``), all at
once. Secrets are never written in the file itself: a secret field takes ``{env: NAME}`` or
``{file: PATH}`` and is read when the config loads. Environment variables of the form
``CALLCONTROL__SECTION__FIELD=value`` override plain fields (``CALLCONTROL__HTTP__PORT=9000``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from callcontrol.errors import ConfigError
from callcontrol.yamlpos import load_yaml_with_positions, position_of


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Model):
    """Where a secret comes from: an environment variable or a file (first line)."""

    env: str | None = None
    file: Path | None = None

    def resolve(self, base: Path) -> SecretStr:
        """Read the secret; raise :class:`ConfigError` when it is not there."""
        if self.env:
            value = os.environ.get(self.env)
            if not value:
                raise ConfigError(f"secret environment variable {self.env} is not set")
            return SecretStr(value)
        if self.file:
            path = self.file if self.file.is_absolute() else base / self.file
            try:
                return SecretStr(path.read_text().strip())
            except OSError as exc:
                raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from exc
        raise ConfigError("a secret needs 'env' or 'file'")


class SiteConfig(_Model):
    """Facts about the call center itself."""

    name: str = "callcontrol"
    timezone: str = "UTC"


class AriConfig(_Model):
    """How to reach Asterisk's REST interface."""

    url: str = "http://127.0.0.1:8088"
    user: str = "callcontrol"
    password: SecretRef
    app: str = "callcontrol"
    request_timeout: float = 5.0
    reconnect_max_delay: float = 2.0


class AmiConfig(_Model):
    """How to reach Asterisk's manager interface."""

    host: str = "127.0.0.1"
    port: int = 5038
    user: str = "callcontrol"
    password: SecretRef
    action_timeout: float = 5.0
    ping_interval: float = 5.0


class AsteriskConfig(_Model):
    """The Asterisk instance the daemon drives."""

    ari: AriConfig
    ami: AmiConfig
    fallback_context: str = "callcontrol-fallback"
    recordings_dir: Path = Path("recordings")
    # Where Asterisk writes ARI recordings (spool/recording), as the daemon sees it.
    spool_recording_dir: Path | None = None


class DatabaseConfig(_Model):
    """The interaction store."""

    url: str = "sqlite+aiosqlite:///var/callcontrol.db"
    journal_dir: Path = Path("var/journal")
    batch_max: int = 500
    batch_interval: float = 0.05
    memory_queue_max: int = 10000
    retry_interval: float = 0.5


class HttpConfig(_Model):
    """The HTTP API."""

    host: str = "127.0.0.1"
    port: int = 8080
    tokens_file: Path = Path("var/tokens.json")


class FlowsConfig(_Model):
    """IVR flows and which extension starts which flow."""

    dir: Path = Path("ivr_flows")
    routes: dict[str, str] = Field(default_factory=lambda: {"100": "hotline"})
    http_allow_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    watch: bool = True


class AgentConfig(_Model):
    """One agent: who they are, their headset endpoint and what they can do."""

    id: str
    name: str
    endpoint: str
    password: SecretRef
    skills: dict[str, int] = Field(default_factory=dict)
    queues: list[str] = Field(default_factory=list)
    wrap_up: float | None = None

    @field_validator("id")
    @classmethod
    def _id_is_simple(cls, value: str) -> str:
        if not value.replace("_", "").replace("-", "").isalnum():
            raise ValueError("agent id may hold letters, digits, '-' and '_' only")
        return value


class QueueConfig(_Model):
    """One queue of the ACD."""

    strategy: Literal["longest_idle", "round_robin", "fewest_calls", "random", "skills"] = (
        "longest_idle"
    )
    skills: dict[str, int] = Field(default_factory=dict)
    ring_timeout: float = 15.0
    max_no_answer: int = 3
    wrap_up: float = 10.0
    max_length: int = 0
    max_wait: float | None = None
    moh: str = "default"
    announce_position: float | None = None
    short_abandon: float = 5.0
    service_level: float = 20.0


class CallerSourceConfig(_Model):
    """A SIP endpoint allowed to place calls into the hotline (a demo caller or a trunk)."""

    id: str
    password: SecretRef


class RunConfig(_Model):
    """Process-level settings."""

    pid_file: Path = Path("var/run/callcontrol.pid")
    shutdown_grace: float = 10.0
    call_max_seconds: float = 4 * 3600.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Model):
    """Everything the daemon reads at start."""

    site: SiteConfig = SiteConfig()
    asterisk: AsteriskConfig
    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    flows: FlowsConfig = FlowsConfig()
    agents: list[AgentConfig] = Field(default_factory=list)
    queues: dict[str, QueueConfig] = Field(default_factory=dict)
    callers: list[CallerSourceConfig] = Field(default_factory=list)
    run: RunConfig = RunConfig()
    # Folder relative paths are resolved against (the config file's folder's parent by default).
    base_dir: Path = Path(".")

    def path(self, p: Path) -> Path:
        """Resolve a configured path against :attr:`base_dir`."""
        return p if p.is_absolute() else self.base_dir / p


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    prefix = "CALLCONTROL__"
    for key, value in environ.items():
        if not key.startswith(prefix):
            continue
        parts = [p.lower() for p in key[len(prefix):].split("__") if p]
        node: dict[str, Any] = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {'.'.join(parts[:-1])} is not a section")
            node = child
        if parts:
            node[parts[-1]] = value


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the config file; raise :class:`ConfigError` listing every problem."""
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    root, positions = load_yaml_with_positions(text, str(path))
    if root is None:
        root = {}
    if not isinstance(root, dict):
        raise ConfigError(f"{path}:1:1: the config must be a mapping")
    data: dict[str, Any] = dict(root)
    _apply_env_overrides(data, environ)
    data.setdefault("base_dir", str(path.resolve().parent.parent))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            line, col = position_of(positions, err["loc"])
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"{path}:{line}:{col}: {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None


def resolve_secret(config: Config, ref: SecretRef) -> SecretStr:
    """Read one configured secret (relative secret files resolve against ``base_dir``)."""
    return ref.resolve(config.base_dir)
