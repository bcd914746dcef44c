"""What one Asterisk instance is made of: ports, credentials, SIP accounts and its folders."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from callcontrol.errors import ConfigError
from callcontrol.pbx.ports import PbxPorts

# Characters that would end a value or start a comment in an Asterisk config file.
_UNSAFE = re.compile(r"[;\r\n\[\]]")
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_PATH = re.compile(r"^/[A-Za-z0-9_./-]+$")
# AMI classes of the daemon's AMI user. write: the actions the daemon sends (Reload and
# PJSIPShowContacts: system; Getvar: reporting); never ``all`` (Originate, Command, UpdateConfig).
# read: the events the daemon (system: ContactStatus) and the project's own observers read
# (bench: call, dtmf, agent; faults: dialplan).
AMI_READ = "system,call,dtmf,agent,dialplan"
AMI_WRITE = "system,reporting"


@dataclass(frozen=True)
class HttpTls:
    """TLS for Asterisk's HTTP server on the network (PEM files, PBX-side paths)."""

    cert_file: str
    key_file: str
    port: int


@dataclass(frozen=True)
class SipAccount:
    """A PJSIP endpoint with digest auth: an agent headset or a caller source."""

    username: str
    password: str = field(repr=False)
    # Dialplan context of its calls; None: the role's own (callcontrol-agents / -inbound).
    context: str | None = None


@dataclass(frozen=True)
class PbxSettings:
    """Everything rendered into one instance's Asterisk config (secrets in plain text)."""

    name: str
    ports: PbxPorts
    ari_user: str
    ari_password: str = field(repr=False)
    ami_user: str = "callcontrol"
    ami_password: str = field(repr=False, default="")
    app: str = "callcontrol"
    bind: str = "127.0.0.1"
    # Networks (``ADDR/BITS``) AMI takes logins from; empty: 127.0.0.1 and the bind address.
    ami_permit: tuple[str, ...] = ()
    # ARI over TLS on ``bind`` (plain HTTP then answers on 127.0.0.1 only); None: plain HTTP on
    # ``bind`` (the config refuses that for a non-loopback bind unless acknowledged).
    http_tls: HttpTls | None = None
    agents: tuple[SipAccount, ...] = ()
    callers: tuple[SipAccount, ...] = ()
    overflow_dial: str | None = None
    overflow_timeout: int = 30
    fallback_prompt: str = "im-sorry&all-circuits-busy-now&please-try-call-later"
    # Load-bench instance (bench/): adds the pure-dialplan hotline (context callcontrol-bench,
    # extension 200), an app_queue queue "bench" with every agent as a static member, and
    # timestamps on AMI events.
    bench: bool = False

    def ami_networks(self) -> list[str]:
        """The ``permit`` lines of the AMI user (``ADDR/MASK``, as manager.conf reads them)."""
        nets = list(self.ami_permit) or ["127.0.0.1/32"] + (
            [] if self.bind in ("0.0.0.0", "127.0.0.1") else [f"{self.bind}/32"])
        parsed = [ipaddress.IPv4Network(n) for n in nets]
        return [f"{n.network_address}/{n.netmask}" for n in parsed]

    def check(self) -> None:
        """Raise :class:`ConfigError` for a value that cannot go safely into Asterisk config
        (the config loader checks the same at load, with positions; this is the last guard)."""
        try:
            ipaddress.IPv4Address(self.bind)
            self.ami_networks()
        except ValueError as exc:
            raise ConfigError(f"not an address or network: {exc}") from None
        ports = [self.ports.sip, self.ports.http, self.ports.ami, self.ports.rtp_start,
                 self.ports.rtp_end, *([self.http_tls.port] if self.http_tls else [])]
        if not all(isinstance(p, int) and 1 <= p <= 65535 for p in ports):
            raise ConfigError(f"ports must be whole numbers from 1 to 65535: {ports}")
        if self.http_tls and not all(_PATH.match(p) for p in (self.http_tls.cert_file,
                                                                self.http_tls.key_file)):
            raise ConfigError("TLS files must be absolute paths of letters, digits and '_./-'")
        names = [self.name, self.ari_user, self.ami_user, self.app]
        names += [a.username for a in self.agents + self.callers]
        names += [a.context for a in self.agents + self.callers if a.context is not None]
        for value in names:
            if not _NAME.match(value):
                raise ConfigError(f"{value!r}: use letters, digits and '_.+-' only")
        secrets = [self.ari_password, self.ami_password]
        secrets += [a.password for a in self.agents + self.callers]
        for secret in secrets:
            if not secret or _UNSAFE.search(secret):
                raise ConfigError("a PBX password is empty or holds ';', '[', ']' or a newline")
        for text in (self.overflow_dial or "", self.fallback_prompt):
            if _UNSAFE.search(text):
                raise ConfigError(f"{text!r}: ';', '[', ']' and newlines are not allowed")
        usernames = [a.username for a in self.agents + self.callers]
        if len(set(usernames)) != len(usernames):
            raise ConfigError("agent endpoints and caller sources must have distinct names")


@dataclass(frozen=True)
class PbxDirs:
    """An instance's folders as Asterisk sees them (inside the chroot when there is one)."""

    base: PurePosixPath

    @property
    def etc(self) -> PurePosixPath:
        """Rendered config (``-C etc/asterisk.conf``)."""
        return self.base / "etc"

    @property
    def run(self) -> PurePosixPath:
        """Control socket and PID file."""
        return self.base / "run"

    @property
    def log(self) -> PurePosixPath:
        """Asterisk's log files."""
        return self.base / "log"

    @property
    def spool(self) -> PurePosixPath:
        """Spool; ARI recordings land in ``spool/recording``."""
        return self.base / "spool"

    @property
    def db(self) -> PurePosixPath:
        """The astdb."""
        return self.base / "db"

    @property
    def cache(self) -> PurePosixPath:
        """Asterisk's cache folder."""
        return self.base / "cache"

    @property
    def moh(self) -> PurePosixPath:
        """Generated music on hold, when the package brings none."""
        return self.base / "moh"

    @property
    def prompts(self) -> PurePosixPath:
        """Where the project's ``ivr_flows/prompts`` appear."""
        return self.base / "prompts"

    @property
    def recordings(self) -> PurePosixPath:
        """Where the project's recordings folder appears."""
        return self.base / "recordings"

    @property
    def asterisk_conf(self) -> PurePosixPath:
        """The file passed to ``asterisk -C``."""
        return self.etc / "asterisk.conf"

    @property
    def control_socket(self) -> PurePosixPath:
        """The remote console socket ``asterisk -r`` talks to."""
        return self.run / "asterisk.ctl"

    def writable(self) -> list[PurePosixPath]:
        """Folders Asterisk writes to, created before it starts."""
        return [
            self.etc,
            self.run,
            self.log,
            self.spool,
            self.spool / "recording",
            self.db,
            self.cache,
            self.moh,
            self.prompts,
            self.recordings,
        ]
