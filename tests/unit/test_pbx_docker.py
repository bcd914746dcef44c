"""asterisk-docker/ runs the same Asterisk config as the native instance."""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "asterisk-docker"


def test_dockerfile_copies_the_same_templates_and_dialplan() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    copies = dict(re.findall(r"^COPY\s+(\S+)\s+(\S+)", dockerfile, re.MULTILINE))
    assert copies["config/asterisk/"] == "/opt/callcontrol/config/asterisk/"
    assert copies["dialplan/"] == "/opt/callcontrol/dialplan/"
    assert copies["callcontrol/"] == "/opt/callcontrol/callcontrol/"
    for source in copies:
        assert (REPO / source).exists(), source
    # the renderer resolves templates relative to the package: same layout in the image
    from callcontrol.pbx import render

    assert render.TEMPLATES == REPO / "config" / "asterisk"
    assert render.DIALPLAN == REPO / "dialplan" / "extensions.conf"
    assert "FROM debian:sid" in dockerfile and "asterisk" in dockerfile


def test_entrypoint_renders_and_starts_like_a_native_instance() -> None:
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    assert "python3 -m callcontrol.pbx render" in entrypoint
    assert 'exec asterisk -f -n -g -C "$BASE/etc/asterisk.conf"' in entrypoint
    instance = (REPO / "callcontrol" / "pbx" / "instance.py").read_text()
    assert '"-f", "-n", "-g", "-C"' in instance


def test_compose_runs_asterisk_and_the_daemon_from_the_repo_config() -> None:
    compose = YAML(typ="safe").load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert services["asterisk"]["build"]["dockerfile"] == "asterisk-docker/Dockerfile"
    assert services["asterisk"]["build"]["context"] == ".."
    assert "callcontrol run --config" in services["callcontrol"]["command"]
    config_mount = "./callcontrol.yaml:/etc/callcontrol/callcontrol.yaml:ro"
    assert config_mount in services["asterisk"]["volumes"]
    assert config_mount in services["callcontrol"]["volumes"]


def test_docker_config_loads_with_secrets_from_the_environment(tmp_path: Path) -> None:
    from callcontrol.config import load_config
    from callcontrol.pbx.service import settings_from_config

    env = {
        name: f"s-{name}"
        for name in ("ARI_PASSWORD", "AMI_PASSWORD", "AGENT_A1_PASSWORD", "CALLER_PASSWORD")
    }
    settings = settings_from_config(load_config(DOCKER / "callcontrol.yaml", environ=env))
    assert settings.ari_password == "s-ARI_PASSWORD"
    assert [a.username for a in settings.agents] == ["agent-a1"]
    assert "change-me" not in (DOCKER / "callcontrol.yaml").read_text()
