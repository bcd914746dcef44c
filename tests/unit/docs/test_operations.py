"""docs/operations.md and the files it ships stay true: the systemd units parse (and pass
``systemd-analyze verify``), their commands are real and produce what the next one uses, the
logrotate file is valid, asterisk-docker/ matches the table of the page, and the Docker build
step builds only where an engine answers."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
from ruamel.yaml import YAML

from callcontrol.config import HttpConfig
from callcontrol.pbx.__main__ import main as pbx_main
from callcontrol.pbx.provision import Launcher
from callcontrol.pbx.service import instance_dir

from .markdown import REPO

UNITS = REPO / "config" / "systemd"
DOC = (REPO / "docs" / "operations.md").read_text()
BASE_DIR = "/var/lib/callcontrol"
INSTANCE = "callcontrol"
CONFIG = "/etc/callcontrol/callcontrol.yaml"
# Executables a server has and this machine may lack.
SERVER_BINARIES = ("/opt/callcontrol/.venv/bin/", "/usr/sbin/asterisk")


def _unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


@pytest.mark.parametrize("name", ["callcontrol.service", "callcontrol-asterisk.service"])
def test_units_have_the_sections_and_keys_a_service_needs(name: str) -> None:
    unit = _unit(name)
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert service["User"] == "callcontrol" and service["Restart"] == "always"
    assert service["EnvironmentFile"] == "/etc/callcontrol/secrets.env"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_units_pass_systemd_analyze_where_it_exists() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return  # the parse above is the check then
    result = subprocess.run(
        [analyze, "verify", *(str(p) for p in sorted(UNITS.glob("*.service")))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip()
        and not (
            "is not executable" in line and any(b in line for b in SERVER_BINARIES)
        )
    ]
    assert not problems, "\n".join(problems)


def _commands(name: str, key: str) -> list[list[str]]:
    unit = (UNITS / name).read_text()
    return [shlex.split(m) for m in re.findall(rf"^{key}=(.*)$", unit, re.M)]


def test_the_daemon_unit_runs_a_real_command() -> None:
    from callcontrol.cli import build_parser

    (command,) = _commands("callcontrol.service", "ExecStart")
    assert command[0].endswith("/bin/callcontrol")
    args = build_parser().parse_args(command[1:])
    assert args.command == "run" and args.config == CONFIG


def test_asterisk_unit_renders_what_it_runs_where_the_daemon_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ExecStartPre really renders (demo config, secrets faked) into the folder ExecStart's
    ``-C`` reads, which is where the daemon expects the instance."""
    expected = instance_dir(Launcher(), Path(BASE_DIR) / "var", INSTANCE)
    (render,) = _commands("callcontrol-asterisk.service", "ExecStartPre")
    (start,) = _commands("callcontrol-asterisk.service", "ExecStart")
    assert render[1:3] == ["-m", "callcontrol.pbx"] and render[3] == "render"
    out = render[render.index("--out") + 1]
    assert out == render[render.index("--base") + 1] == str(expected)
    conf = start[start.index("-C") + 1]
    assert PurePosixPath(conf) == PurePosixPath(out) / "etc" / "asterisk.conf"
    for name in ("CALLCONTROL_ARI_PASSWORD", "CALLCONTROL_AMI_PASSWORD", "DEMO_CALLER_PASSWORD",
                 "AGENT_ALICE_PASSWORD", "AGENT_BOB_PASSWORD", "AGENT_CAROL_PASSWORD",
                 "AGENT_DAVE_PASSWORD"):
        monkeypatch.setenv(name, "not-a-real-secret")
    here = tmp_path / out.lstrip("/")
    args = [a.replace(CONFIG, str(REPO / "config" / "callcontrol.yaml")) for a in render[3:]]
    args = [str(here) if a == out else a for a in args]
    args[args.index("--base") + 1] = out  # as Asterisk will see it
    assert pbx_main(args) == 0
    rendered = (here / "etc" / "asterisk.conf").read_text()
    assert f"astetcdir => {out}/etc" in rendered
    for other in ("ExecReload", "ExecStop"):
        (command,) = _commands("callcontrol-asterisk.service", other)
        assert command[command.index("-C") + 1] == conf


def test_logrotate_file_names_the_instance_log_and_is_valid(tmp_path: Path) -> None:
    text = (UNITS / "callcontrol.logrotate").read_text()
    log_dir = instance_dir(Launcher(), Path(BASE_DIR) / "var", INSTANCE) / "log"
    assert f"{log_dir}/messages.log {{" in text
    assert "messages.log =>" in (REPO / "config" / "asterisk" / "logger.conf.j2").read_text()
    assert "fallback" not in re.sub(r"#.*", "", text), "the fallback ledger must not rotate"
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not os.path.exists(logrotate):
        return
    conf = tmp_path / "lr.conf"
    conf.write_text(text.replace("su callcontrol callcontrol", "su root root"))
    result = subprocess.run([logrotate, "-d", "-s", str(tmp_path / "state"), str(conf)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert "error" not in result.stderr.lower(), result.stderr


# --- asterisk-docker/ against the page's table -------------------------------------------


def _compose() -> dict:  # type: ignore[type-arg]
    return YAML(typ="safe").load((REPO / "asterisk-docker" / "compose.yaml").read_text())


def _table_rows() -> dict[str, list[str]]:
    section = DOC.split("## Running with Docker", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) == 5 else None
        if match:
            rows[match.group(1)] = cells
    return rows


def _documented_volumes(cell: str) -> set[str]:
    return {
        f"{m.group(1)}{':ro' if m.group(2) else ''}"
        for m in re.finditer(r"`([^`]+)`( \(read-only\))?", cell)
    }


def _compose_volumes(service: dict) -> set[str]:  # type: ignore[type-arg]
    out = set()
    for item in service.get("volumes", []):
        parts = item.split(":")
        out.add(parts[0] + (":ro" if parts[-1] == "ro" else ""))
    return out


def test_compose_services_volumes_and_ports_match_the_page() -> None:
    compose = _compose()
    rows = _table_rows()
    assert set(rows) == set(compose["services"])
    config = YAML(typ="safe").load((REPO / "asterisk-docker" / "callcontrol.yaml").read_text())
    ast = config["asterisk"]
    ports = {
        "asterisk": {
            str(ast["sip_port"]),
            f"{ast['rtp_start']}-{ast['rtp_end']}",
            re.search(r":(\d+)", ast["ari"]["url"]).group(1),  # type: ignore[union-attr]
            str(ast["ami"]["port"]),
        },
        "callcontrol": {str(config.get("http", {}).get("port", HttpConfig().port))},
    }
    for name, service in compose["services"].items():
        _, image, network, port_cell, volume_cell = rows[name]
        if "build" in service:
            assert f"`{service['build']['dockerfile']}`" in image
        else:
            assert f"`{service['image']}`" in image
        assert network == service["network_mode"] == "host"
        assert "ports" not in service  # host network: the ports are the config's
        assert set(re.findall(r"(\d+(?:-\d+)?)/(?:udp|tcp)", port_cell)) == ports[name], name
        assert _documented_volumes(volume_cell) == _compose_volumes(service), name
    named = {v.split(":")[0] for s in compose["services"].values() for v in s["volumes"]}
    assert set(compose["volumes"]) <= named


# --- the Docker build step -----------------------------------------------------------------


def _fake_docker(folder: Path, info_status: int, build_status: int) -> Path:
    folder.mkdir()
    log = folder / "calls.log"
    (folder / "docker").write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        f'case "$1" in info) exit {info_status};; build) exit {build_status};; esac\n'
    )
    (folder / "docker").chmod(0o755)
    return log


def _build(path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path}
    return subprocess.run(["bash", str(REPO / "scripts" / "docker-build.sh")], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_docker_build_step_builds_only_where_an_engine_answers(tmp_path: Path) -> None:
    bash_only = tmp_path / "bin"
    bash_only.mkdir()
    for tool in ("bash", "dirname"):
        (bash_only / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    no_docker = _build(str(bash_only))
    assert no_docker.returncode == 0 and "no docker command" in no_docker.stdout

    log = _fake_docker(tmp_path / "no-engine", info_status=1, build_status=0)
    result = _build(f"{tmp_path / 'no-engine'}:{bash_only}")
    assert result.returncode == 0 and "no Docker engine" in result.stdout
    assert log.read_text() == "info\n"

    log = _fake_docker(tmp_path / "engine", info_status=0, build_status=0)
    result = _build(f"{tmp_path / 'engine'}:{bash_only}")
    assert result.returncode == 0
    assert log.read_text().splitlines()[1] == (
        "build --file asterisk-docker/Dockerfile --tag callcontrol-asterisk:ci ."
    )

    _fake_docker(tmp_path / "broken", info_status=0, build_status=3)
    assert _build(f"{tmp_path / 'broken'}:{bash_only}").returncode == 3


def test_ci_runs_the_docker_build_step() -> None:
    assert "bash scripts/docker-build.sh" in (REPO / ".ci" / "run").read_text()
