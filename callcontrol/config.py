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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from callcontrol.errors import ConfigError
from callcontrol.yamlpos import dotted, load_yaml_with_positions, position_of, read_yaml_file


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Model):
    """Where a secret comes from: an environment variable or a file (first line)."""

    env: str | None = None
    file: Path | None = None
    _value: SecretStr | None = PrivateAttr(default=None)

    def load(self, base: Path, environ: Mapping[str, str]) -> None:
        """Read the secret now (at config load); raise :class:`ConfigError` if it is missing."""
        self._value = self.resolve(base, environ)

    @property
    def value(self) -> SecretStr:
        """The secret read at load time."""
        if self._value is None:
            raise ConfigError("secret was not loaded with the config")
        return self._value

    def resolve(self, base: Path, environ: Mapping[str, str] | None = None) -> SecretStr:
        """Read the secret; raise :class:`ConfigError` when it is not there."""
        environ = os.environ if environ is None else environ
        if self.env:
            value = environ.get(self.env)
            if not value:
                raise ConfigError(f"secret environment variable {self.env} is not set")
            return SecretStr(value)
        if self.file:
            path = self.file if self.file.is_absolute() else base / self.file
            try:
                return SecretStr(path.read_text().strip())
            except (OSError, ValueError) as exc:  # ValueError: a NUL byte, not UTF-8 text
                why = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise ConfigError(f"cannot read secret file {path}: {why}") from exc
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
    # The instance callcontrol starts itself (callcontrol.pbx): SIP, RTP and where it binds.
    # HTTP/ARI and AMI ports come from ``ari.url`` and ``ami.port``.
    instance_name: str = "callcontrol"
    bind: str = "127.0.0.1"
    sip_port: int = 5060
    rtp_start: int = 10000
    rtp_end: int = 10199
    # Asterisk root (a chroot built by scripts/provision-asterisk.sh); None: ask the script.
    chroot: Path | None = None
    # Dial string the dialplan fallback tries when the app is down (e.g. PJSIP/operator).
    overflow_dial: str | None = None
    overflow_timeout: int = 30
    fallback_prompt: str = "im-sorry&all-circuits-busy-now&please-try-call-later"


class DatabaseConfig(_Model):
    """The interaction store."""

    url: str = "sqlite+aiosqlite:///var/callcontrol.db"
    journal_dir: Path = Path("var/journal")
    batch_max: int = 500
    batch_interval: float = 0.05
    memory_queue_max: int = 10000
    retry_interval: float = 0.5
    # A batch not committed within this many seconds counts as failed and is retried.
    write_timeout: float = 10.0
    # How often an idle writer checks that the database answers (for /health).
    probe_interval: float = 5.0
    journal_segment_bytes: int = 8 * 1024 * 1024


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
    # Variables every call starts with (they win over a flow's own defaults). In a value,
    # ``{api}`` is this daemon's own base URL (``http://HOST:PORT``), e.g. for the demo CRM.
    variables: dict[str, Any] = Field(default_factory=dict)
    # Operator overrides of schedules survive a restart in this file.
    overrides_file: Path = Path("var/schedule-overrides.json")


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
    # Played after the position announcement when the flow's queue step offers a callback.
    callback_prompt: list[str] = Field(
        default_factory=lambda: ["sound:to-call-this-number", "sound:vm-press", "digits:1"]
    )
    callback_confirm_timeout: float = 10.0


class AcdConfig(_Model):
    """Settings of the ACD shared by every queue: pause reasons, feature codes and callbacks."""

    pause_reasons: list[str] = Field(
        default_factory=lambda: ["break", "lunch", "training", "meeting", "no_answer"]
    )
    login_code: str = "*45"
    pause_code: str = "*46"
    # Dial string of the customer's leg of a callback; ``{number}`` is the number to call.
    callback_endpoint: str = "PJSIP/{number}"
    callback_caller_id: str | None = None
    callback_attempts: int = 3
    callback_retry_delay: float = 120.0
    callback_ring_timeout: float = 30.0
    # Outbound trunks for ``dial`` steps to ``number:+E164``: name -> dial string with
    # ``{number}`` (e.g. ``PJSIP/{number}@carrier``). A step's ``via`` picks one; else the first.
    trunks: dict[str, str] = Field(default_factory=dict)
    # Headset passwords of agents added through the HTTP API: one mode-0600 file per agent.
    agent_secrets_dir: Path = Path("var/agent-secrets")
    # Seed of the ``random`` queue strategy's generator (tests); unset: a fresh random order.
    random_seed: int | None = None


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
    acd: AcdConfig = AcdConfig()
    callers: list[CallerSourceConfig] = Field(default_factory=list)
    # Schedules shared by every flow (name -> raw schedule mapping as in FLOWS.md "Schedules").
    # Kept raw here: the flows side validates them (callcontrol.flows.model.Schedule).
    schedules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    run: RunConfig = RunConfig()
    # Folder that relative paths are resolved against; itself relative to the config file's
    # folder (default: that folder).
    base_dir: Path = Path(".")

    def path(self, p: Path) -> Path:
        """Resolve a configured path against :attr:`base_dir`."""
        return p if p.is_absolute() else self.base_dir / p

    def database_url(self) -> str:
        """The database URL, a relative SQLite file resolved against :attr:`base_dir`."""
        url = self.database.url
        prefix = "sqlite+aiosqlite:///"
        if url.startswith(prefix) and not url[len(prefix):].startswith(("/", ":memory:")):
            return prefix + str(self.path(Path(url[len(prefix):])))
        return url


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


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, *, read_secrets: bool = True
) -> Config:
    """Load and validate the config file; raise :class:`ConfigError` listing every problem.

    ``read_secrets=False`` skips reading the secrets (for tools such as ``flows check`` that
    need none); such a secret then reads with :meth:`SecretRef.resolve` only.
    """
    environ = os.environ if environ is None else environ
    try:
        return _load_config(path, environ, read_secrets=read_secrets)
    except ConfigError:
        raise
    except Exception as exc:  # a bug of ours, but the file still gets a finding, not a crash
        raise ConfigError(f"{path}:1:1: cannot load config: {type(exc).__name__}: {exc}") from None


def _load_config(path: Path, environ: Mapping[str, str], *, read_secrets: bool) -> Config:
    root, positions = load_yaml_with_positions(read_yaml_file(path, "config"), str(path))
    if root is None:
        root = {}
    if not isinstance(root, dict):
        raise ConfigError(f"{path}:1:1: the config must be a mapping")
    data: dict[str, Any] = dict(root)
    _apply_env_overrides(data, environ)
    base = Path(str(data.get("base_dir", ".")))
    try:
        data["base_dir"] = str(
            base if base.is_absolute() else (path.resolve().parent / base).resolve()
        )
    except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop
        line, col = position_of(positions, ("base_dir",))
        raise ConfigError(f"{path}:{line}:{col}: base_dir: invalid path: {exc}") from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            line, col = position_of(positions, err["loc"])
            where = dotted(err["loc"])
            lines.append(f"{path}:{line}:{col}: {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    if not read_secrets:
        return config
    problems = []
    for loc, ref in _secret_refs(config, ()):
        try:
            ref.load(config.base_dir, environ)
        except ConfigError as exc:
            line, col = position_of(positions, loc)
            problems.append(f"{path}:{line}:{col}: {dotted(loc)}: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _secret_refs(node: Any, loc: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...],
                                                                     SecretRef]]:
    if isinstance(node, SecretRef):
        return [(loc, node)]
    found = []
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            found += _secret_refs(getattr(node, name), (*loc, name))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _secret_refs(item, (*loc, index))
    elif isinstance(node, dict):
        for key, item in node.items():
            found += _secret_refs(item, (*loc, key))
    return found


def resolve_secret(config: Config, ref: SecretRef) -> SecretStr:
    """The value of one configured secret, read when the config was loaded."""
    return ref.value
