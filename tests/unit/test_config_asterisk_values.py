"""Values that reach an Asterisk config file (issue 11): refused at config load with their
position (or the environment variable that set them), checked again by the renderer; AMI gets
least privilege; ARI on the network needs TLS or an explicit acknowledgement; the rendered
files are never readable by others, not even while being written."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from callcontrol.config import load_config
from callcontrol.errors import ConfigError
from callcontrol.pbx.ports import PbxPorts
from callcontrol.pbx.render import render_config, write_config
from callcontrol.pbx.service import settings_from_config
from callcontrol.pbx.settings import PbxDirs, PbxSettings, SipAccount

BASE = """\
asterisk:
  bind: 127.0.0.1
  ari:
    url: http://127.0.0.1:8088
    password: {env: T_ARI}
  ami:
    password: {env: T_AMI}
"""
ENV = {"T_ARI": "ari-pw", "T_AMI": "ami-pw"}
INJECTION = "127.0.0.1\n\n[evil]\nsecret = x\nread = all\nwrite = all"


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Any:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    return load_config(cfg, {**ENV, **(environ or {})})


def _refused(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text, environ)
    return str(err.value)


def test_a_bind_with_newlines_is_refused_at_its_position(tmp_path: Path) -> None:
    text = BASE.replace("bind: 127.0.0.1", f"bind: {INJECTION!r}".replace("'", '"'))
    message = _refused(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'c.yaml'}:2:3: asterisk.bind: "), message
    assert "not an IPv4 address" in message


def test_a_bind_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    message = _refused(tmp_path, BASE, {"CALLCONTROL__ASTERISK__BIND": INJECTION})
    assert message.startswith("environment variable CALLCONTROL__ASTERISK__BIND: "
                              "asterisk.bind: "), message


@pytest.mark.parametrize(("field", "yaml_line", "value", "pos"), [
    ("asterisk.instance_name", "  instance_name: ", '"demo]\\n[x"', "2:3"),
    ("asterisk.ari.user", "    user: ", '"u;x"', "4:5"),
    ("asterisk.ari.app", "    app: ", '"a b"', "4:5"),
    ("asterisk.ami.user", "    user: ", '"u\\nwrite=all"', "7:5"),
    ("asterisk.ami.port", "    port: ", "70000", "7:5"),
    ("asterisk.sip_port", "  sip_port: ", "0", "2:3"),
    ("asterisk.rtp_end", "  rtp_end: ", "9", "2:3"),
    ("asterisk.fallback_context", "  fallback_context: ", '"x,1"', "2:3"),
    ("asterisk.overflow_dial", "  overflow_dial: ", '"PJSIP/op,30,G(x)"', "2:3"),
    ("asterisk.fallback_prompt", "  fallback_prompt: ", '"beep,skip"', "2:3"),
    ("asterisk.ari.url", "    url: ", '"http://127.0.0.1"', "4:5"),
])
def test_every_asterisk_value_is_checked_for_its_syntax(
    tmp_path: Path, field: str, yaml_line: str, value: str, pos: str,
) -> None:
    section = {"asterisk.ari": "  ari:\n", "asterisk.ami": "  ami:\n"}.get(
        field.rsplit(".", 1)[0])
    lines = BASE.splitlines(keepends=True)
    at = lines.index(section) + 1 if section else 1
    lines.insert(at, f"{yaml_line}{value}\n")
    text = "".join(lines).replace("    url: http://127.0.0.1:8088\n", "") \
        if field == "asterisk.ari.url" else "".join(lines)
    message = _refused(tmp_path, text)
    line = int(pos.split(":")[0]) if section is None else at + 1
    assert f"c.yaml:{line}:{pos.split(':')[1]}: {field}: " in message, message


@pytest.mark.parametrize("where", ["agents", "callers"])
def test_names_and_passwords_of_sip_accounts_are_checked(tmp_path: Path, where: str) -> None:
    (tmp_path / "pw").write_text("pw;x\n")
    account = ("  - {id: a1, name: A, endpoint: \"a1\\n[x]\", password: {file: pw}}\n"
               if where == "agents" else "  - {id: \"c 1\", password: {file: pw}}\n")
    message = _refused(tmp_path, BASE + f"{where}:\n" + account)
    field = "endpoint" if where == "agents" else "id"
    assert f"c.yaml:9:{23 if where == 'agents' else 6}: {where}.0.{field}: " in message, message
    account = account.replace('"a1\\n[x]"', "a1").replace('"c 1"', "c1")
    message = _refused(tmp_path, BASE + f"{where}:\n" + account)
    column = 37 if where == "agents" else 14
    assert f"c.yaml:9:{column}: {where}.0.password: a password Asterisk reads" in message, message


def test_a_network_bind_needs_tls_or_an_acknowledgement(tmp_path: Path) -> None:
    text = BASE.replace("bind: 127.0.0.1", "bind: 0.0.0.0")
    message = _refused(tmp_path, text)
    assert "c.yaml:2:3: asterisk.bind: " in message and "allow_plain_http_on_network" in message
    plain = _load(tmp_path, text + "  allow_plain_http_on_network: true\n")
    files = render_config(settings_from_config(plain), PbxDirs(PurePosixPath("/i")), "/m")
    assert "bindaddr = 0.0.0.0\n" in files["http.conf"] and "tlsenable = no" in files["http.conf"]
    tls = _load(tmp_path, text + "  http_tls: {cert_file: /etc/c.pem, key_file: /etc/k.pem}\n")
    http = render_config(settings_from_config(tls), PbxDirs(PurePosixPath("/i")), "/m")[
        "http.conf"]
    assert "bindaddr = 127.0.0.1\n" in http  # plain HTTP: this machine only
    assert "tlsenable = yes\ntlsbindaddr = 0.0.0.0:8089\ntlscertfile = /etc/c.pem\n" in http
    message = _refused(tmp_path, text + "  http_tls: {cert_file: etc/c.pem, key_file: /k}\n")
    assert "asterisk.http_tls.cert_file" in message


def test_ami_permits_only_this_machine_and_configured_networks(tmp_path: Path) -> None:
    acknowledged = "  allow_plain_http_on_network: true\n"
    for bind, extra, permits in [
        ("127.0.0.1", "", ["127.0.0.1/255.255.255.255"]),
        ("0.0.0.0", acknowledged, ["127.0.0.1/255.255.255.255"]),
        ("10.1.2.3", acknowledged, ["127.0.0.1/255.255.255.255", "10.1.2.3/255.255.255.255"]),
        ("0.0.0.0", acknowledged + "  ami:\n    password: {env: T_AMI}\n"
         "    permit: [10.9.0.0/16]\n", ["10.9.0.0/255.255.0.0"]),
    ]:
        text = BASE.replace("bind: 127.0.0.1", f"bind: {bind}")
        if "permit" in extra:
            text = text.replace("  ami:\n    password: {env: T_AMI}\n", "")
        config = _load(tmp_path, text + extra)
        manager = render_config(settings_from_config(config), PbxDirs(PurePosixPath("/i")),
                                "/m")["manager.conf"]
        lines = [line for line in manager.splitlines()
                 if line.startswith(("permit ", "read ", "write "))]
        assert lines == [f"permit = {p}" for p in permits] + [
            "read = system,call,dtmf,agent,dialplan", "write = system,reporting"], (bind, lines)
    message = _refused(tmp_path, BASE.replace("password: {env: T_AMI}",
                                              "password: {env: T_AMI}\n    permit: [10.9.0.1/8]"))
    assert "c.yaml:8:14: asterisk.ami.permit.0: " in message, message


def _settings(**changes: Any) -> PbxSettings:
    values: dict[str, Any] = {"name": "t1", "ports": PbxPorts(1, 2, 3, 4, 5),
                              "ari_user": "u", "ari_password": "p", "ami_password": "p",
                              "agents": (SipAccount("a1", "pw"),)}
    return PbxSettings(**{**values, **changes})


@pytest.mark.parametrize("changes", [
    {"bind": INJECTION}, {"bind": "example.org"}, {"ami_permit": ("10.0.0.0/8\n[x]",)},
    {"ports": PbxPorts(1, 2, 70000, 4, 5)}, {"ami_user": "u\n[x]"},
    {"agents": (SipAccount("a1", "p;w"),)},
])
def test_the_renderer_refuses_what_the_loader_would(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        render_config(_settings(**changes), PbxDirs(PurePosixPath("/i")), "/m")


def test_the_renderer_refuses_folders_that_would_break_a_line() -> None:
    for base, moh in (("/srv/x\n[evil]", "/m"), ("/srv/x", "/m;x")):
        with pytest.raises(ConfigError, match="a folder Asterisk reads"):
            render_config(_settings(), PbxDirs(PurePosixPath(base)), moh)


def test_rendered_files_are_created_private_never_world_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loose_umask: None,
) -> None:
    """Every file is private from the moment it exists: the mode of each new file is read as
    soon as it is created (os.open, or Python's open)."""
    seen: dict[str, int] = {}
    real_os_open, real_io_open = os.open, open

    def os_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        fd = real_os_open(path, flags, mode, **kw)
        seen.setdefault(str(path), stat.S_IMODE(os.fstat(fd).st_mode))
        return fd

    def io_open(path: Any, *args: Any, **kw: Any) -> Any:
        handle = real_io_open(path, *args, **kw)
        if not isinstance(path, int):
            seen.setdefault(str(path), stat.S_IMODE(os.fstat(handle.fileno()).st_mode))
        return handle

    left_over = tmp_path / f".manager.conf.{os.getpid()}.tmp"  # from a crashed earlier write
    left_over.write_text("left over")
    left_over.chmod(0o644)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr("io.open", io_open)
    monkeypatch.setattr("builtins.open", io_open)
    files = render_config(_settings(), PbxDirs(PurePosixPath("/i")), "/m")
    write_config(files, tmp_path)
    written = {p for p in seen if Path(p).parent == tmp_path}
    assert written, seen
    assert {p: oct(m) for p, m in seen.items() if p in written and m & 0o077} == {}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in tmp_path.iterdir()
            if stat.S_IMODE(p.stat().st_mode) != 0o600} == {}
    assert not list(tmp_path.glob(".*.tmp"))
