"""The daemon's one typed configuration, loaded once from YAML plus environment overrides.

Every bad field is reported with its place in the file (``FILE:LINE:COL: message``), all at
once. Secrets are never written in the file itself: a secret field takes ``{env: NAME}`` or
``{file: PATH}`` and is read when the config loads. Environment variables of the form
``CALLCONTROL__SECTION__FIELD=value`` override plain fields (``CALLCONTROL__HTTP__PORT=9000``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from callcontrol.errors import ConfigError
from callcontrol.yamlpos import Positions, load_yaml_with_positions, position_of


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- values that reach an Asterisk config file (callcontrol.pbx.render) ----------------------
# Each is checked for its syntax here, so a bad value is refused at load with its position;
# PbxSettings.check repeats the checks right before rendering.


def _matching(pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address (e.g. 127.0.0.1 or 0.0.0.0)"
                         ) from None
    return value


PbxName = Annotated[str, _matching(r"[A-Za-z0-9_-]{1,64}",
                                   "a name: letters, digits, '_' and '-' (up to 64)")]
"""A name Asterisk sees (instance, ARI/AMI user, Stasis app, dialplan context)."""
SipName = Annotated[str, _matching(r"[A-Za-z0-9_.+-]{1,64}",
                                   "a SIP name: letters, digits and '_.+-' (up to 64)")]
"""A PJSIP endpoint name (an agent's headset, a caller source)."""
Port = Annotated[int, Field(strict=False, ge=1, le=65535)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]
DialString = Annotated[str, _matching(r"[A-Za-z0-9_./@+:-]+(&[A-Za-z0-9_./@+:-]+)*",
                                      "a dial string such as PJSIP/operator (no ',' ';' "
                                      "or spaces)")]
SoundList = Annotated[str, _matching(r"[A-Za-z0-9_/-]+(&[A-Za-z0-9_/-]+)*",
                                     "sound names joined by '&'")]
PbxPath = Annotated[str, _matching(r"/[A-Za-z0-9_./-]+",
                                   "an absolute path of letters, digits and '_./-'")]
UNSAFE_PBX_SECRET = re.compile(r"[;\[\]\s]")
"""What a password written into an Asterisk file may not hold (';' starts a comment, brackets
a section, a newline a new line; white space is trimmed by Asterisk's parser)."""


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
            except OSError as exc:
                raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from exc
        raise ConfigError("a secret needs 'env' or 'file'")


class PbxSecretRef(SecretRef):
    """A secret written into an Asterisk config file: checked for its syntax when read."""

    def resolve(self, base: Path, environ: Mapping[str, str] | None = None) -> SecretStr:
        """Read the secret; refuse one that would break out of its Asterisk config line."""
        return _checked_pbx_secret(super().resolve(base, environ))


def _checked_pbx_secret(value: SecretStr) -> SecretStr:
    if UNSAFE_PBX_SECRET.search(value.get_secret_value()):
        raise ConfigError("a password Asterisk reads may not hold ';', '[', ']', white space "
                          "or a newline")
    return value


def _as_pbx_secret(value: Any) -> Any:
    if isinstance(value, SecretRef) and not isinstance(value, PbxSecretRef):
        converted = PbxSecretRef(env=value.env, file=value.file)
        if value._value is not None:  # read already: keep it, checked as it would be now
            converted._value = _checked_pbx_secret(value._value)
        return converted
    return value


PbxSecret = Annotated[PbxSecretRef, BeforeValidator(_as_pbx_secret)]
"""A secret written into an Asterisk file (a plain :class:`SecretRef` is taken as one)."""


class SiteConfig(_Model):
    """Facts about the call center itself."""

    name: str = "callcontrol"
    timezone: str = "UTC"


class AriConfig(_Model):
    """How to reach Asterisk's REST interface."""

    url: str = "http://127.0.0.1:8088"
    user: PbxName = "callcontrol"
    password: PbxSecret
    app: PbxName = "callcontrol"
    request_timeout: float = 5.0
    reconnect_max_delay: float = 2.0

    @field_validator("url")
    @classmethod
    def _url_names_a_port(cls, value: str) -> str:
        """The port of ``url`` is rendered into http.conf: it must be there and valid."""
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
            raise ValueError(f"{value!r} must read http://HOST:PORT")
        return value


class AmiConfig(_Model):
    """How to reach Asterisk's manager interface."""

    host: str = "127.0.0.1"
    port: Port = 5038
    user: PbxName = "callcontrol"
    password: PbxSecret
    action_timeout: float = 5.0
    ping_interval: float = 5.0
    # Networks AMI accepts logins from (manager.conf ``permit``); the default is this machine:
    # 127.0.0.1 and, when ``asterisk.bind`` is one address, that address.
    permit: list[ipaddress.IPv4Network] = Field(default_factory=list)


class HttpTlsConfig(_Model):
    """TLS for Asterisk's HTTP server (ARI) on the network: PEM files as Asterisk sees them."""

    cert_file: PbxPath
    key_file: PbxPath
    port: Port = 8089


class AsteriskConfig(_Model):
    """The Asterisk instance the daemon drives."""

    ari: AriConfig
    ami: AmiConfig
    fallback_context: PbxName = "callcontrol-fallback"
    recordings_dir: Path = Path("recordings")
    # Where Asterisk writes ARI recordings (spool/recording), as the daemon sees it.
    spool_recording_dir: Path | None = None
    # The instance callcontrol starts itself (callcontrol.pbx): SIP, RTP and where it binds.
    # HTTP/ARI and AMI ports come from ``ari.url`` and ``ami.port``.
    instance_name: PbxName = "callcontrol"
    sip_port: Port = 5060
    rtp_start: Port = 10000
    rtp_end: Port = 10199
    # Asterisk root (a chroot built by scripts/provision-asterisk.sh); None: ask the script.
    chroot: Path | None = None
    # Dial string the dialplan fallback tries when the app is down (e.g. PJSIP/operator).
    overflow_dial: DialString | None = None
    overflow_timeout: Annotated[int, Field(ge=1, le=3600)] = 30
    fallback_prompt: SoundList = "im-sorry&all-circuits-busy-now&please-try-call-later"
    # ARI (Asterisk's HTTP server) on an address other than loopback: TLS (``http_tls``), or
    # plain HTTP on the network acknowledged with ``allow_plain_http_on_network: true``.
    http_tls: HttpTlsConfig | None = None
    allow_plain_http_on_network: bool = False
    # Where SIP, AMI and ARI listen (declared last: its check reads the two fields above).
    bind: IPv4 = "127.0.0.1"

    @field_validator("bind")
    @classmethod
    def _network_bind_is_deliberate(cls, value: str, info: ValidationInfo) -> str:
        if ipaddress.IPv4Address(value).is_loopback:
            return value
        if info.data.get("http_tls") is None and not info.data.get(
                "allow_plain_http_on_network"):
            raise ValueError(
                f"bind {value} puts ARI (HTTP, with its password) on the network: set "
                "asterisk.http_tls (cert_file, key_file) or acknowledge plain HTTP with "
                "asterisk.allow_plain_http_on_network: true")
        return value

    @field_validator("rtp_end")
    @classmethod
    def _rtp_range(cls, value: int, info: ValidationInfo) -> int:
        start = info.data.get("rtp_start")
        if start is not None and value < start:
            raise ValueError(f"rtp_end {value} is below rtp_start {start}")
        return value


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
    port: Port = 8080
    tokens_file: Path = Path("var/tokens.json")
    # The demo CRM (``GET /demo/crm/customers/{account}``, read by the demo hotline's ``http``
    # step): off unless a config turns it on, and then answering this machine only.
    demo_crm: bool = False


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

    id: PbxName
    name: str
    endpoint: SipName
    password: PbxSecret
    skills: dict[str, int] = Field(default_factory=dict)
    queues: list[str] = Field(default_factory=list)
    wrap_up: float | None = None


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

    id: SipName
    password: PbxSecret


NumberPattern = Annotated[str, _matching(
    r"\+?[0-9?]*\*?", "a number pattern: digits (optionally after '+'), '?' for one digit, "
    "a final '*' for any further digits (e.g. +3906*)"), Field(min_length=1, max_length=32)]
ROLE_ORDER = ("agent", "supervisor", "admin")
"""API roles from least to most trusted (as :data:`callcontrol.api.auth.RANK`)."""


def number_matches(pattern: str, number: str) -> bool:
    """Whether ``number`` (``+`` and digits) matches one :data:`NumberPattern`."""
    if not re.fullmatch(r"\+?[0-9]{1,15}", number):
        return False
    body = pattern.removesuffix("*")
    regex = re.escape(body).replace("\\?", "[0-9]") + ("[0-9]*" if pattern.endswith("*") else "")
    return re.fullmatch(regex, number) is not None


class OutboundAllow(_Model):
    """The toll-fraud guard: outside numbers (``number:`` targets) calls may be sent to.

    ``agent``/``supervisor``/``admin``: blind transfers through the API, by the token's role (a
    role may also use the patterns of the roles below it). ``flows``: a flow's ``dial`` step.
    Empty (the default): no outside number at all.
    """

    agent: list[NumberPattern] = Field(default_factory=list, max_length=1000)
    supervisor: list[NumberPattern] = Field(default_factory=list, max_length=1000)
    admin: list[NumberPattern] = Field(default_factory=list, max_length=1000)
    flows: list[NumberPattern] = Field(default_factory=list, max_length=1000)

    def permits_transfer(self, role: str, number: str) -> bool:
        """Whether a token of ``role`` may send a caller to ``number``."""
        rank = ROLE_ORDER.index(role)
        patterns = [p for r in ROLE_ORDER[: rank + 1] for p in getattr(self, r)]
        return any(number_matches(p, number) for p in patterns)

    def permits_dial(self, number: str) -> bool:
        """Whether a flow's ``dial`` step may call ``number``."""
        return any(number_matches(p, number) for p in self.flows)


class SecurityConfig(_Model):
    """Guards against abuse of the daemon's powers."""

    outbound_allow: OutboundAllow = OutboundAllow()


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
    security: SecurityConfig = SecurityConfig()
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


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]
                         ) -> dict[tuple[str, ...], str]:
    """Apply ``CALLCONTROL__SECTION__FIELD`` variables; return ``{field location: variable}``."""
    prefix = "CALLCONTROL__"
    applied: dict[tuple[str, ...], str] = {}
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
            applied[tuple(parts)] = key
    return applied


def _where(path: Path, positions: Positions, from_env: Mapping[tuple[str, ...], str],
           loc: tuple[str | int, ...]) -> str:
    """``FILE:LINE:COL`` of a field, or the environment variable that set it."""
    for end in range(len(loc), 0, -1):
        variable = from_env.get(tuple(str(p) for p in loc[:end]))
        if variable is not None:
            return f"environment variable {variable}"
    line, col = position_of(positions, loc)
    return f"{path}:{line}:{col}"


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, *, read_secrets: bool = True
) -> Config:
    """Load and validate the config file; raise :class:`ConfigError` listing every problem.

    ``read_secrets=False`` skips reading the secrets (for tools such as ``flows check`` that
    need none); such a secret then reads with :meth:`SecretRef.resolve` only.
    """
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
    from_env = _apply_env_overrides(data, environ)
    base = Path(str(data.get("base_dir", ".")))
    data["base_dir"] = str(base if base.is_absolute() else (path.resolve().parent / base).resolve())
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"{_where(path, positions, from_env, err['loc'])}: {where}: "
                         f"{err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    if not read_secrets:
        return config
    problems = []
    for loc, ref in _secret_refs(config, ()):
        try:
            ref.load(config.base_dir, environ)
        except ConfigError as exc:
            problems.append(f"{_where(path, positions, from_env, loc)}: "
                            f"{'.'.join(map(str, loc))}: {exc}")
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
