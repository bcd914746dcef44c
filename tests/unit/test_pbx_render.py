"""Rendering the Asterisk templates for one instance (no Asterisk needed)."""

from __future__ import annotations

import wave
from pathlib import Path, PurePosixPath

import pytest

from callcontrol.errors import ConfigError
from callcontrol.pbx.ports import PbxPorts
from callcontrol.pbx.render import NOLOAD, render_config, write_config, write_moh_tone
from callcontrol.pbx.settings import PbxDirs, PbxSettings, SipAccount

PORTS = PbxPorts(sip=15060, http=18088, ami=15038, rtp_start=20000, rtp_end=20199)
DIRS = PbxDirs(PurePosixPath("/srv/callcontrol/t1"))


def _settings(**changes: object) -> PbxSettings:
    values: dict[str, object] = {
        "name": "t1",
        "ports": PORTS,
        "ari_user": "ariuser",
        "ari_password": "ari-secret",
        "ami_user": "amiuser",
        "ami_password": "ami-secret",
        "app": "myapp",
        "agents": (SipAccount("agent-a1", "pw-a1"),),
        "callers": (SipAccount("caller", "pw-caller"),),
    }
    values.update(changes)
    return PbxSettings(**values)  # type: ignore[arg-type]


def _sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """Asterisk config sections in order (names repeat: endpoint, auth and aor share one)."""
    found: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        line = line.split(";")[0].strip()
        if line.startswith("["):
            found.append((line[1 : line.index("]")], {}))
        elif "=" in line and found:
            key, value = (part.strip() for part in line.split("=", 1))
            found[-1][1][key.lstrip(">").strip()] = value.lstrip(">").strip()
    return found


def test_every_template_renders_with_ports_and_loopback_binds() -> None:
    files = render_config(_settings(), DIRS, "/srv/callcontrol/t1/moh")
    assert set(files) >= {
        "asterisk.conf",
        "modules.conf",
        "http.conf",
        "ari.conf",
        "manager.conf",
        "pjsip.conf",
        "rtp.conf",
        "musiconhold.conf",
        "logger.conf",
        "extensions.conf",
    }
    http = dict(_sections(files["http.conf"]))["general"]
    assert (http["bindaddr"], http["bindport"]) == ("127.0.0.1", "18088")
    ami = _sections(files["manager.conf"])
    assert dict(ami)["general"]["bindaddr"] == "127.0.0.1"
    assert dict(ami)["general"]["port"] == "15038"
    assert dict(ami)["amiuser"]["secret"] == "ami-secret"
    assert "deny = 0.0.0.0/0.0.0.0" in files["manager.conf"]
    assert "permit = 127.0.0.1/255.255.255.255" in files["manager.conf"]
    assert dict(_sections(files["ari.conf"]))["ariuser"]["password"] == "ari-secret"
    rtp = dict(_sections(files["rtp.conf"]))["general"]
    assert (rtp["rtpstart"], rtp["rtpend"]) == ("20000", "20199")
    assert dict(_sections(files["pjsip.conf"]))["transport-udp"]["bind"] == "127.0.0.1:15060"


def test_asterisk_conf_points_at_the_instance_folders() -> None:
    files = render_config(_settings(), DIRS, "/x")
    directories = dict(_sections(files["asterisk.conf"]))["directories"]
    assert directories["astspooldir"] == "/srv/callcontrol/t1/spool"
    assert directories["astrundir"] == "/srv/callcontrol/t1/run"
    assert directories["astetcdir"] == "/srv/callcontrol/t1/etc"
    assert PurePosixPath("/srv/callcontrol/t1/spool/recording") in DIRS.writable()


def test_modules_conf_unloads_port_openers() -> None:
    text = render_config(_settings(), DIRS, "/x")["modules.conf"]
    for module in ("chan_sip.so", "chan_iax2.so", "chan_mgcp.so", "pbx_dundi.so", "res_xmpp.so"):
        assert f"noload => {module}" in text
    assert len(NOLOAD) == len(set(NOLOAD))


def test_pjsip_has_only_authenticated_endpoints_in_the_right_contexts() -> None:
    sections = _sections(render_config(_settings(), DIRS, "/x")["pjsip.conf"])
    endpoints = {name: body for name, body in sections if body.get("context") is not None}
    assert endpoints == {
        "agent-a1": {"context": "callcontrol-agents", "auth": "agent-a1", "aors": "agent-a1"},
        "caller": {"context": "callcontrol-inbound", "auth": "caller", "aors": "caller"},
    }
    text = render_config(_settings(), DIRS, "/x")["pjsip.conf"]
    assert "anonymous" not in text.split("]", 1)[1].lower().replace("no anonymous", "")
    assert "password = pw-a1" in text and "password = pw-caller" in text
    assert "max_contacts = 1" in text


def test_extensions_conf_sets_globals_and_includes_the_dialplan() -> None:
    text = render_config(_settings(overflow_dial="PJSIP/operator"), DIRS, "/x")["extensions.conf"]
    globals_ = dict(_sections(text))["globals"]
    assert globals_["CALLCONTROL_APP"] == "myapp"
    assert globals_["CALLCONTROL_OVERFLOW"] == "PJSIP/operator"
    assert '#include "callcontrol-dialplan.conf"' in text


def test_bench_parts_render_only_for_bench_instances() -> None:
    plain = render_config(_settings(), DIRS, "/x")
    assert "callcontrol-bench" not in plain["extensions.conf"]
    assert [name for name, _ in _sections(plain["queues.conf"])] == ["general"]
    assert "timestampevents" not in plain["manager.conf"]
    bench = render_config(
        _settings(bench=True, callers=(SipAccount("dp", "pw", context="callcontrol-bench"),)),
        DIRS, "/x",
    )
    sections = dict(_sections(bench["extensions.conf"]))
    assert "callcontrol-bench" in sections
    # the menu has its own context, so digit 1 never waits for a longer extension
    assert sections["callcontrol-bench"] == {"exten": "200,1,Goto(callcontrol-bench-menu,s,1)"}
    assert "callcontrol-bench-menu" in sections
    assert "exten => 1,1,Queue(bench,,,,30)" in bench["extensions.conf"]
    queue = dict(_sections(bench["queues.conf"]))["bench"]
    assert queue["member"] == "PJSIP/agent-a1"
    assert "timestampevents = yes" in bench["manager.conf"]
    endpoints = {n: b for n, b in _sections(bench["pjsip.conf"]) if "context" in b}
    assert endpoints["dp"]["context"] == "callcontrol-bench"


def test_dialplan_hands_calls_to_stasis_with_a_fallback() -> None:
    dialplan = (Path(__file__).parents[2] / "dialplan" / "extensions.conf").read_text()
    contexts = [name for name, _ in _sections(dialplan)]
    assert contexts == [
        "callcontrol-inbound",
        "callcontrol-agents",
        "callcontrol-fallback",
        "callcontrol-feature-fallback",
    ]
    assert "Stasis(${CALLCONTROL_APP},inbound,${PJSIP_HEADER(read,Call-ID)})" in dialplan
    assert "Stasis(${CALLCONTROL_APP},feature,${EXTEN},${CHANNEL(endpoint)})" in dialplan
    assert "exten => *45," in dialplan and "exten => *46," in dialplan


@pytest.mark.parametrize(
    "changes",
    [
        {"ari_password": "a;b"},
        {"ami_password": "x\n[evil]"},
        {"agents": (SipAccount("agent one", "pw"),)},
        {"callers": (SipAccount("caller", ""),)},
        {"agents": (SipAccount("dup", "p"),), "callers": (SipAccount("dup", "q"),)},
        {"callers": (SipAccount("caller", "pw", context="x;y"),)},
    ],
)
def test_values_that_would_break_the_config_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        render_config(_settings(**changes), DIRS, "/x")


def test_secrets_are_written_private_and_not_in_repr(tmp_path: Path) -> None:
    settings = _settings()
    assert "ari-secret" not in repr(settings) and "pw-a1" not in repr(settings)
    write_config(render_config(settings, DIRS, "/x"), tmp_path)
    assert (tmp_path / "ari.conf").stat().st_mode & 0o077 == 0
    assert (tmp_path / "callcontrol-dialplan.conf").read_text().startswith("; callcontrol")


def test_moh_tone_is_an_8khz_mono_wav(tmp_path: Path) -> None:
    path = tmp_path / "moh" / "tone.wav"
    write_moh_tone(path, seconds=1.0)
    with wave.open(str(path)) as tone:
        assert (tone.getframerate(), tone.getnchannels(), tone.getnframes()) == (8000, 1, 8000)
        assert max(tone.readframes(8000)) > 0
