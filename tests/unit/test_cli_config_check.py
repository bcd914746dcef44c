"""``callcontrol config check``: the config as the daemon loads it, secrets included."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcontrol.cli import main

GOOD = """\
asterisk:
  ari: {password: {env: TEST_ARI_PASSWORD}}
  ami: {password: {env: TEST_AMI_PASSWORD}}
schedules:
  office: {timezone: Europe/Rome, open: {mon-fri: ["08:00-18:00"]}}
"""


def _run(path: Path, *extra: str) -> int:
    return main(["--config", str(path), "config", "check", *extra])


def test_a_good_config_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("TEST_ARI_PASSWORD", "a-secret")
    monkeypatch.setenv("TEST_AMI_PASSWORD", "b-secret")
    assert _run(path) == 0
    assert capsys.readouterr().out == f"{path}: ok\n"


def test_missing_secrets_and_bad_fields_are_reported_with_their_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TEST_ARI_PASSWORD", raising=False)
    monkeypatch.delenv("TEST_AMI_PASSWORD", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    assert _run(path) == 2
    assert f"{path}:2:" in capsys.readouterr().err
    assert _run(path, "--without-secrets") == 0
    path.write_text(GOOD.replace("mon-fri", "weekdays"))
    assert _run(path, "--without-secrets") == 2
    assert "schedules.office.open.weekdays" in capsys.readouterr().err
    path.write_text(GOOD + "http: {port: eighty}\n")
    assert _run(path, "--without-secrets") == 2
    assert f"{path}:6:" in capsys.readouterr().err
