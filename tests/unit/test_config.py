from pathlib import Path

import pytest

from callcontrol.config import load_config, resolve_secret
from callcontrol.errors import ConfigError

GOOD = """\
asterisk:
  ari:
    password: {env: T_ARI}
  ami:
    password: {file: secret.txt}
http:
  port: 9000
"""


def test_loads_with_secrets_from_env_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "config" / "c.yaml"
    cfg.parent.mkdir()
    cfg.write_text(GOOD)
    (cfg.parent / "secret.txt").write_text("s3cret\n")
    config = load_config(cfg, {"T_ARI": "ari-pw"})
    assert config.http.port == 9000
    assert resolve_secret(config, config.asterisk.ari.password).get_secret_value() == "ari-pw"
    assert resolve_secret(config, config.asterisk.ami.password).get_secret_value() == "s3cret"
    assert "ari-pw" not in repr(config)


def test_environment_overrides_plain_fields(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD)
    (tmp_path / "secret.txt").write_text("x")
    config = load_config(cfg, {"CALLCONTROL__HTTP__PORT": "9100", "T_ARI": "x"})
    assert config.http.port == 9100


def test_every_bad_field_reported_with_position(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD.replace("port: 9000", "port: nine\n  hots: x"))
    with pytest.raises(ConfigError) as err:
        load_config(cfg, {"T_ARI": "x"})
    lines = str(err.value).splitlines()
    assert any(f"{cfg}:7:3: http.port" in line for line in lines), lines
    assert any(f"{cfg}:8:3: http.hots" in line and "Extra inputs" in line for line in lines)


def test_missing_secret_is_a_clear_error_at_load(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(GOOD)
    with pytest.raises(ConfigError, match=rf"{cfg}:3:5: asterisk.ari.password: .*T_ARI is not set"):
        load_config(cfg, {})


def test_yaml_syntax_error_has_position(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("asterisk: [\n")
    with pytest.raises(ConfigError, match=rf"{cfg}:2:1"):
        load_config(cfg, {})
