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
    model_validator,
)

from callcontrol.errors import ConfigError
from callcontrol.yamlpos import (
    Positions,
    dotted,
    load_yaml_with_positions,
    position_of,
    read_yaml_file,
)


class _Model(BaseModel):
    # Attribute docstrings are the field descriptions of docs/configuration.md.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


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
    """Name of the environment variable holding the secret."""
    file: Path | None = None
    """File whose first line is the secret (relative to ``base_dir``)."""
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
    """The call center's name."""
    timezone: str = Field("UTC", examples=["Europe/Rome"])
    """Site time zone (IANA name): ``now`` in flows, hourly statistics, ``HH:MM`` overrides."""
    country_code: Annotated[str, _matching(r"[1-9][0-9]{0,2}", "a country calling code: 1 "
                                           "to 3 digits, e.g. 39")] | None = Field(
        None, examples=["39"])
    """Country calling code of numbers written without ``+`` or ``00`` (customer history,
    the ``caller`` filter: E.164 normalisation, docs/api.md); null: such numbers are refused."""
    national_prefix: Annotated[str, _matching(r"[0-9]{0,2}", "up to 2 digits")] = Field(
        "0", examples=[""])
    """Digits a national number starts with that are not part of it (``0`` in most of Europe;
    empty in Italy, where the ``0`` belongs to the number): dropped before ``country_code``."""


class AriConfig(_Model):
    """How to reach Asterisk's REST interface."""

    url: str = "http://127.0.0.1:8088"
    """Base URL of Asterisk's HTTP server (ARI lives under ``/ari``); its port is rendered
    into Asterisk's ``http.conf``."""
    user: PbxName = "callcontrol"
    """ARI user (letters, digits, ``_``, ``-``)."""
    password: PbxSecret = Field(examples=[{"env": "CALLCONTROL_ARI_PASSWORD"}])
    """ARI password (no ``;``, ``[``, ``]`` or white space: Asterisk reads it)."""
    app: PbxName = "callcontrol"
    """Stasis application name the dialplan hands calls to."""
    request_timeout: float = 5.0
    """Seconds an ARI request may take."""
    reconnect_max_delay: float = 2.0
    """Longest pause, in seconds, between two attempts to reconnect the ARI WebSocket."""

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
    """AMI host."""
    port: Port = 5038
    """AMI TCP port (rendered into Asterisk's ``manager.conf``)."""
    user: PbxName = "callcontrol"
    """AMI user (letters, digits, ``_``, ``-``)."""
    password: PbxSecret = Field(examples=[{"env": "CALLCONTROL_AMI_PASSWORD"}])
    """AMI password (no ``;``, ``[``, ``]`` or white space: Asterisk reads it)."""
    action_timeout: float = 5.0
    """Seconds an AMI action may take."""
    ping_interval: float = 5.0
    """Seconds between keep-alive pings; a missed answer marks the link down."""
    permit: list[ipaddress.IPv4Network] = Field(default_factory=list,
                                                examples=[["127.0.0.1/32"]])
    """Networks AMI accepts logins from (``manager.conf`` ``permit``); empty: this machine
    only (127.0.0.1 and the bind address)."""


class HttpTlsConfig(_Model):
    """TLS for Asterisk's HTTP server (ARI) on the network."""

    cert_file: PbxPath = Field(examples=["/etc/asterisk/keys/asterisk.pem"])
    """Certificate (PEM), as Asterisk sees it."""
    key_file: PbxPath = Field(examples=["/etc/asterisk/keys/asterisk.key"])
    """Private key (PEM), as Asterisk sees it."""
    port: Port = 8089
    """TLS port on ``asterisk.bind`` (plain HTTP then answers on 127.0.0.1 only)."""


class AsteriskConfig(_Model):
    """The Asterisk instance the daemon drives."""

    ari: AriConfig
    """The REST interface."""
    ami: AmiConfig
    """The manager interface."""
    fallback_context: PbxName = "callcontrol-fallback"
    """Dialplan context callers are sent to when the daemon cannot serve them."""
    recordings_dir: Path = Path("recordings")
    """Where call recordings are kept (the daemon's view)."""
    spool_recording_dir: Path | None = Field(None, examples=["/var/spool/asterisk/recording"])
    """Where Asterisk writes ARI recordings (``spool/recording``), as the daemon sees it;
    null: the instance folder's."""
    instance_name: PbxName = "callcontrol"
    """Name of the Asterisk instance (its folder ``var/asterisk/NAME``). The instance's SIP,
    RTP and bind settings follow; HTTP/ARI and AMI ports come from ``ari.url`` and
    ``ami.port``."""
    sip_port: Port = 5060
    """PJSIP UDP port."""
    rtp_start: Port = 10000
    """First RTP port."""
    rtp_end: Port = 10199
    """Last RTP port."""
    chroot: Path | None = Field(None, examples=["/var/lib/callcontrol/asterisk-root"])
    """Asterisk root (a chroot built by ``scripts/provision-asterisk.sh``); null: use an
    Asterisk 22 on ``PATH``, else let the script build one."""
    overflow_dial: DialString | None = Field(None, examples=["PJSIP/operator"])
    """Dial string the dialplan fallback tries when the daemon is down (no ``,``, ``;`` or
    spaces); null: apologize and hang up."""
    overflow_timeout: Annotated[int, Field(ge=1, le=3600)] = 30
    """Seconds the fallback's ``overflow_dial`` rings."""
    fallback_prompt: SoundList = "im-sorry&all-circuits-busy-now&please-try-call-later"
    """Sounds the fallback plays (``&``-separated Asterisk sound names)."""
    http_tls: HttpTlsConfig | None = None
    """TLS for ARI when ``bind`` is not a loopback address; null: plain HTTP."""
    allow_plain_http_on_network: bool = False
    """Acknowledge plain-HTTP ARI (its password in clear) on a non-loopback ``bind``."""
    # declared last: its check reads the two fields above
    bind: IPv4 = "127.0.0.1"
    """IPv4 address Asterisk's SIP, HTTP and AMI listen on. Not a loopback address: needs
    ``http_tls`` or ``allow_plain_http_on_network: true``."""

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

    url: str = Field(
        "sqlite+aiosqlite:///var/callcontrol.db",
        examples=["postgresql+asyncpg://callcontrol@db.internal/callcontrol"],
    )
    """SQLAlchemy URL: ``sqlite+aiosqlite:///PATH`` (relative to ``base_dir``) or
    ``postgresql+asyncpg://USER@HOST/DB``."""
    journal_dir: Path = Path("var/journal")
    """The local journal every record is appended to before it goes to the database."""
    batch_max: int = 500
    """Most records written to the database in one transaction."""
    batch_interval: float = 0.2
    """Seconds the writer waits to fill a batch: the database lags the journal by about this
    much, and each transaction's fixed cost is shared by the records of the interval."""
    memory_queue_max: int = 10000
    """Records held in memory behind the journal; beyond, the writer reads the journal."""
    retry_interval: float = 0.5
    """Seconds between attempts while the database is down."""
    write_timeout: float = 10.0
    """A batch not committed within this many seconds counts as failed and is retried."""
    probe_interval: float = 5.0
    """How often an idle writer checks that the database answers (for ``/health``)."""
    journal_segment_bytes: int = 8 * 1024 * 1024
    """Size at which the journal starts a new segment file."""
    journal_backlog_max: int = Field(100_000, ge=1)
    """Records held in memory while the journal cannot be written (disk full); they go to the
    journal, or straight to the database, as soon as one takes them. Beyond, records are
    dropped and counted in ``/health`` (``journal.dropped``)."""


class HttpConfig(_Model):
    """The HTTP API."""

    host: str = "127.0.0.1"
    """Address the API listens on."""
    port: Port = 8080
    """API port."""
    tokens_file: Path = Path("var/tokens.json")
    """API tokens (hashed), written by ``callcontrol tokens create``."""
    demo_crm: bool = False
    """Serve the demo CRM (``/demo/crm/customers/{account}``, read by the demo hotline), to
    this machine only."""


class FlowsConfig(_Model):
    """IVR flows and which extension starts which flow."""

    dir: Path = Path("ivr_flows")
    """The flows folder (one file a flow; prompts in ``prompts/``, test cases in ``tests/``)."""
    routes: dict[str, str] = Field(default_factory=lambda: {"100": "hotline"})
    """Dialed extension -> the flow it starts."""
    http_allow_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost"], examples=[["crm.example.com"]]
    )
    """Hosts ``http`` steps may call (``*.example.com`` matches subdomains)."""
    secrets: dict[str, SecretRef] = Field(
        default_factory=dict, examples=[{"crm_token": {"env": "CRM_TOKEN"}}]
    )
    """Secrets flows read as ``{{ secrets.NAME }}``; masked in logs and timelines."""
    watch: bool = True
    """Reload a flow when its file changes."""
    variables: dict[str, Any] = Field(
        default_factory=dict, examples=[{"crm_url": "{api}/demo/crm/customers"}]
    )
    """Variables every call starts with (they win over a flow's own defaults). In a value,
    ``{api}`` is this daemon's own base URL (``http://HOST:PORT``)."""
    overrides_file: Path = Path("var/schedule-overrides.json")
    """Operator overrides of schedules survive a restart in this file."""


class AgentConfig(_Model):
    """One agent: who they are, their headset endpoint and what they can do."""

    id: PbxName = Field(examples=["alice"])
    """Agent id (letters, digits, ``-``, ``_``)."""
    name: str = Field(examples=["Alice"])
    """Display name."""
    endpoint: SipName = Field(examples=["alice"])
    """PJSIP endpoint (SIP user name) of the agent's headset (letters, digits, ``_.+-``)."""
    password: PbxSecret = Field(examples=[{"env": "AGENT_ALICE_PASSWORD"}])
    """Headset password (no ``;``, ``[``, ``]`` or white space: Asterisk reads it)."""
    skills: dict[str, int] = Field(default_factory=dict, examples=[{"billing": 5}])
    """Skill -> level (for the ``skills`` strategy and a queue step's ``skills``)."""
    queues: list[str] = Field(default_factory=list, examples=[["billing"]])
    """Queues the agent serves."""
    wrap_up: float | None = Field(None, examples=[15])
    """Seconds of wrap-up after a call; null: the queue's ``wrap_up``."""


DispositionCodeText = Annotated[str, _matching(
    r"[0-9]{1,8}", "a disposition code: 1 to 8 digits (an agent types it on the headset)")]


class DispositionCode(_Model):
    """One wrap-up code an agent may give a call of the queue."""

    code: DispositionCodeText = Field(examples=["1"])
    """Digits (the headset's disposition code, then these: ``*481``)."""
    label: str = Field(min_length=1, max_length=64, examples=["Resolved"])
    """What the code means, for people."""
    requires_note: bool = False
    """The code needs a free note (so it can be given through the API only)."""


class DispositionsConfig(_Model):
    """The wrap-up codes of a queue and whether a call must get one."""

    codes: list[DispositionCode] = Field(min_length=1, max_length=100)
    """The codes (each different)."""
    required: bool = False
    """Keep the agent in wrap-up until a code is given (or ``wrap_up_max`` passes, then the
    call's disposition is ``missing``)."""
    wrap_up_max: float = Field(300.0, gt=0, le=86400)
    """Seconds from the call's end an agent may be held in wrap-up for a required code; at
    least the queue's (and the agent's) ``wrap_up``."""

    @field_validator("codes")
    @classmethod
    def _codes_differ(cls, value: list[DispositionCode]) -> list[DispositionCode]:
        seen: set[str] = set()
        for item in value:
            if item.code in seen:
                raise ValueError(f"disposition code {item.code!r} is listed twice")
            seen.add(item.code)
        return value

    def code(self, code: str) -> DispositionCode | None:
        """The configured code ``code``, or ``None``."""
        return next((item for item in self.codes if item.code == code), None)


class QueueConfig(_Model):
    """One queue of the ACD."""

    strategy: Literal["longest_idle", "round_robin", "fewest_calls", "random", "skills"] = (
        "longest_idle"
    )
    """How the next agent is chosen."""
    skills: dict[str, int] = Field(default_factory=dict, examples=[{"support": 1}])
    """Skill -> minimum level an agent needs to get this queue's calls."""
    ring_timeout: float = 15.0
    """Seconds an agent's headset rings before the call rolls over to the next agent."""
    max_no_answer: int = 3
    """Missed calls in a row after which an agent is paused (reason ``no_answer``)."""
    wrap_up: float = 10.0
    """Seconds an agent gets after a call before the next one."""
    max_length: int = 0
    """Most callers waiting (0: no limit); beyond, the queue step's ``full`` exit."""
    max_wait: float | None = Field(None, examples=[600])
    """Seconds a caller may wait (a queue step's ``max_wait`` wins); null: no limit."""
    moh: str = "default"
    """Music-on-hold class."""
    announce_position: float | None = Field(None, examples=[60])
    """Seconds between position announcements; null: none."""
    short_abandon: float = 5.0
    """Callers hanging up within this many seconds are short abandons (statistics)."""
    service_level: float = 20.0
    """Answer-time target in seconds for the service level (statistics)."""
    callback_prompt: list[str] = Field(
        default_factory=lambda: ["sound:to-call-this-number", "sound:vm-press", "digits:1"]
    )
    """Played after the position announcement when the flow's queue step offers a callback."""
    callback_confirm_timeout: float = 10.0
    """Seconds the caller has to confirm a callback."""
    dispositions: DispositionsConfig | None = Field(None, examples=[{
        "required": True, "wrap_up_max": 120,
        "codes": [{"code": "1", "label": "Resolved"},
                  {"code": "2", "label": "Escalated", "requires_note": True}]}])
    """Wrap-up codes agents give this queue's calls; null: none."""

    @model_validator(mode="after")
    def _hold_outlasts_wrap_up(self) -> QueueConfig:
        if self.dispositions is not None and self.dispositions.wrap_up_max < self.wrap_up:
            raise ValueError(f"dispositions.wrap_up_max ({self.dispositions.wrap_up_max:g}) is "
                             f"shorter than wrap_up ({self.wrap_up:g})")
        return self


class AcdConfig(_Model):
    """Settings of the ACD shared by every queue: pause reasons, feature codes and callbacks."""

    pause_reasons: list[str] = Field(
        default_factory=lambda: ["break", "lunch", "training", "meeting", "no_answer"]
    )
    """Reasons an agent may give for a pause."""
    login_code: str = "*45"
    """Feature code an agent dials from the headset to log in or out."""
    pause_code: str = "*46"
    """Feature code to pause or unpause."""
    disposition_code: Annotated[str, _matching(r"\*[0-9]{1,3}", "'*' and 1 to 3 digits")] = (
        "*48")
    """Feature code an agent in wrap-up dials followed by a disposition code (``*481``)."""
    callback_endpoint: str = "PJSIP/{number}"
    """Dial string of the customer's leg of a callback; ``{number}`` is the number to call."""
    callback_caller_id: str | None = Field(None, examples=["+390612345678"])
    """Caller id shown on callbacks; null: Asterisk's default."""
    callback_attempts: int = 3
    """Tries to reach a customer who asked for a callback."""
    callback_retry_delay: float = 120.0
    """Seconds between two callback tries."""
    callback_ring_timeout: float = 30.0
    """Seconds the customer's phone rings on a callback."""
    trunks: dict[str, str] = Field(
        default_factory=dict, examples=[{"carrier": "PJSIP/{number}@carrier"}]
    )
    """Outbound trunks for ``dial`` steps to ``number:+E164``: name -> dial string with
    ``{number}``. A step's ``via`` picks one; else the first."""
    agent_secrets_dir: Path = Path("var/agent-secrets")
    """Headset passwords of agents added through the HTTP API: one mode-0600 file per agent."""
    random_seed: int | None = None
    """Seed of the ``random`` queue strategy's generator (tests); null: a fresh random order."""

    @model_validator(mode="after")
    def _disposition_code_stands_apart(self) -> AcdConfig:
        for name in ("login_code", "pause_code"):
            other = getattr(self, name)
            if other.startswith(self.disposition_code) or self.disposition_code.startswith(
                    other):
                raise ValueError(f"disposition_code {self.disposition_code!r} and {name} "
                                 f"{other!r} overlap: a headset could not tell them apart")
        return self


class CallerSourceConfig(_Model):
    """A SIP endpoint allowed to place calls into the hotline (a demo caller or a trunk)."""

    id: SipName = Field(examples=["democaller"])
    """SIP user name."""
    password: PbxSecret = Field(examples=[{"env": "DEMO_CALLER_PASSWORD"}])
    """SIP password."""


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

    agent: list[NumberPattern] = Field(default_factory=list, max_length=1000,
                                       examples=[["+3906*"]])
    """Numbers an agent token may transfer its caller to."""
    supervisor: list[NumberPattern] = Field(default_factory=list, max_length=1000)
    """More numbers a supervisor token may transfer callers to."""
    admin: list[NumberPattern] = Field(default_factory=list, max_length=1000)
    """More numbers an admin token may transfer callers to."""
    flows: list[NumberPattern] = Field(default_factory=list, max_length=1000,
                                       examples=[["+39800??????"]])
    """Numbers a flow's ``dial`` step may call."""

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
    """Outside numbers calls may be sent to (patterns: ``+3906*`` a prefix, ``?`` one digit);
    nothing by default."""


class RunConfig(_Model):
    """Process-level settings."""

    pid_file: Path = Path("var/run/callcontrol.pid")
    """The daemon writes its PID here."""
    shutdown_grace: float = 10.0
    """Seconds calls get to finish on SIGTERM before they are handed to the fallback."""
    call_max_seconds: float = 4 * 3600.0
    """Hard upper bound of a call; past it the call is hung up and closed ``failed``."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe log level written (JSON lines on standard error)."""


class SampledRecording(_Model):
    """``{percent: N}``: record N % of calls, chosen from the call id."""

    percent: int = Field(ge=0, le=100, examples=[20])
    """Share of calls recorded, 0 to 100."""


RecordingMode = Literal["all", "none", "on_demand"]


class RecordingPolicy(_Model):
    """One named recording policy."""

    record: RecordingMode | SampledRecording = Field(examples=["all", {"percent": 20}])
    """``all``, ``none``, ``on_demand`` (an agent or supervisor starts it) or ``{percent: N}``
    (decided once per call from its id, and logged on its timeline)."""
    retention_days: int | None = Field(None, ge=1)
    """Days a recording is kept (counted from its start); null: kept until deleted by hand."""
    consent_prompt: str | None = Field(None, min_length=1, examples=["recording-notice"])
    """Sound the caller hears before the first recording of a call (null: no prompt)."""


NO_RECORDING = "none"
"""The built-in policy that records nothing."""
VOICEMAIL = "voicemail"
"""The policy name on the rows of voicemail messages (the flows' ``record`` step); reserved."""
FEATURE_CODE = r"\*[0-9]{1,4}"


class VoicemailSettings(_Model):
    """Voicemail messages: what a flow's ``record`` step keeps. Every message is kept whatever
    the call's recording policy says (leaving one is the caller's choice), as a recording of
    its own in the same tree (mono, the caller only); its row names the policy ``voicemail``."""

    retention_days: int | None = Field(None, ge=1, examples=[30])
    """Days a message is kept (counted from its start); null: kept until deleted by hand."""


class RecordingSettings(_Model):
    """The ``recording`` section: policies, where each applies, and the file layout. Files go
    to ``asterisk.recordings_dir`` (``YYYY/MM/DD/<call-id>-<n>.wav``), the folder Asterisk
    sees through the same path mapping as the prompts."""

    channels: Literal["stereo", "mono"] = "stereo"
    """``stereo``: the caller on the left channel, the agent(s) on the right; ``mono``: a mix."""
    format: Literal["wav"] = "wav"
    """File format (16-bit PCM WAV, 8 kHz)."""
    policies: dict[str, RecordingPolicy] = Field(
        default_factory=dict,
        examples=[{"quality": {"record": "all", "retention_days": 90},
                   "sampled": {"record": {"percent": 20}, "retention_days": 30}}])
    """Named policies (``none`` is built in and cannot be redefined)."""
    default: str = NO_RECORDING
    """The policy of a call leg that no flow, queue or step names."""
    flows: dict[str, str] = Field(default_factory=dict)
    """Flow name -> policy of the IVR leg (recorded from the flow's start)."""
    queues: dict[str, str] = Field(default_factory=dict)
    """Queue name -> policy of the leg with an agent (a flow's ``queue``/``dial`` step may
    name another with ``recording:``)."""
    mute_code: str = Field("*47", pattern=FEATURE_CODE)
    """Digits an agent presses on the headset during a call to mute or unmute its recordings."""
    on_demand_code: str = Field("*49", pattern=FEATURE_CODE)
    """Digits an agent presses during a call to start (or stop) an ``on_demand`` recording."""
    purge_interval: float = Field(86400.0, gt=0)
    """Seconds between the daemon's retention purges (the first runs at start)."""
    voicemail: VoicemailSettings = VoicemailSettings()
    """Voicemail messages (rows with the policy ``voicemail``): how long they are kept."""

    @model_validator(mode="after")
    def _names_exist(self) -> RecordingSettings:
        for reserved in (NO_RECORDING, VOICEMAIL):
            if reserved in self.policies:
                raise ValueError(
                    f"policy name {reserved!r} is built in; choose another name")
        if self.mute_code == self.on_demand_code:
            raise ValueError("mute_code and on_demand_code must differ")
        refs = [("default", self.default)]
        refs += [(f"flows.{k}", v) for k, v in self.flows.items()]
        refs += [(f"queues.{k}", v) for k, v in self.queues.items()]
        for where, name in refs:
            if name != NO_RECORDING and name not in self.policies:
                known = ", ".join([NO_RECORDING, *sorted(self.policies)])
                raise ValueError(f"{where}: unknown recording policy {name!r}; known: {known}")
        return self

    def policy(self, name: str) -> RecordingPolicy | None:
        """The policy called ``name`` (``none`` included), or ``None`` when there is none."""
        if name == NO_RECORDING:
            return RecordingPolicy(record="none")
        return self.policies.get(name)

    def retention_days(self, name: str) -> int | None:
        """Days the recordings a row names ``name`` are kept (``voicemail``: the messages'
        retention); ``None``: until deleted by hand. :class:`KeyError` for an unknown name."""
        if name == VOICEMAIL:
            return self.voicemail.retention_days
        policy = self.policy(name)
        if policy is None:
            raise KeyError(name)
        return policy.retention_days


class Config(_Model):
    """Everything the daemon reads at start."""

    site: SiteConfig = SiteConfig()
    """The call center."""
    asterisk: AsteriskConfig
    """The Asterisk instance."""
    database: DatabaseConfig = DatabaseConfig()
    """The interaction store."""
    http: HttpConfig = HttpConfig()
    """The HTTP API."""
    flows: FlowsConfig = FlowsConfig()
    """IVR flows."""
    agents: list[AgentConfig] = Field(default_factory=list)
    """Agents defined in the config (more can be added through the API)."""
    queues: dict[str, QueueConfig] = Field(default_factory=dict)
    """Queue name -> queue."""
    acd: AcdConfig = AcdConfig()
    """Settings shared by every queue."""
    security: SecurityConfig = SecurityConfig()
    """Guards against abuse: outside numbers calls may reach."""
    callers: list[CallerSourceConfig] = Field(default_factory=list)
    """SIP endpoints allowed to place calls into the hotline (a demo caller, a trunk)."""
    schedules: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        examples=[{"office": {"timezone": "Europe/Rome", "open": {"mon-fri": ["08:00-18:00"]}}}],
    )
    """Schedules shared by every flow (name -> schedule, written as in a flow's
    ``schedules:``; see docs/flows.md). Kept raw here: the flows side validates them."""
    run: RunConfig = RunConfig()
    """The daemon process."""
    recording: RecordingSettings = RecordingSettings()
    """Call recording: policies, consent, in-call codes (files: ``asterisk.recordings_dir``)."""
    base_dir: Path = Field(Path("."), examples=[".."])
    """Folder that relative paths are resolved against; itself relative to the config file's
    folder (default: that folder)."""

    @model_validator(mode="after")
    def _recorded_queues_exist(self) -> Config:
        unknown = sorted(set(self.recording.queues) - set(self.queues))
        if unknown:
            raise ValueError(f"recording.queues names unknown queue(s): {', '.join(unknown)}")
        return self

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
    from_env = _apply_env_overrides(data, environ)
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
            lines.append(f"{_where(path, positions, from_env, err['loc'])}: "
                         f"{dotted(err['loc'])}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    if not read_secrets:
        return config
    problems = []
    for loc, ref in _secret_refs(config, ()):
        try:
            ref.load(config.base_dir, environ)
        except ConfigError as exc:
            problems.append(f"{_where(path, positions, from_env, loc)}: {dotted(loc)}: {exc}")
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
