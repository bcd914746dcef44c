"""Hostile YAML at every boundary (flow loader, ``flows check``, config loader): a finding at
a position, quickly, never a traceback. Issue 11's reproductions, each as a test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from callcontrol.config import load_config
from callcontrol.errors import ConfigError, FlowError
from callcontrol.flows.check import check_main
from callcontrol.flows.loader import load_flow
from callcontrol.yamlpos import MAX_YAML_BYTES, YamlSyntaxError, load_yaml_with_positions


def alias_bomb(levels: int = 7) -> str:
    """~300 bytes whose aliases expand to 10**levels values (issue 11: 25 s and 1.6 GB)."""
    names = "abcdefghij"
    lines = ["a: &a [" + ", ".join(["lol"] * 10) + "]"]
    for level in range(1, levels):
        alias = f"*{names[level - 1]}"
        lines.append(f"{names[level]}: &{names[level]} [" + ", ".join([alias] * 10) + "]")
    return "\n".join(lines) + "\n"


# (text, position, start of the message) for each hostile input of issue 11 and its kin
HOSTILE: dict[str, tuple[bytes, str, str]] = {
    "timestamp": (b"x: 2024-13-45\n", "1:4", "invalid value '2024-13-45' (month must be in"),
    "nul_byte": (b"flow: a\x00b\n", "1:8", "character U+0000 is not allowed in YAML"),
    "deep_lists": (b"[" * 3000, "1:65", "nested deeper than 64 levels"),
    "deep_flow_maps": (b"{a: " * 3000, "1:257", "nested deeper than 64 levels"),
    "deep_block_maps": (
        "".join("  " * i + "a:\n" for i in range(100)).encode(),
        "64:127",
        "nested deeper than 64 levels",
    ),
    "alias_bomb": (
        alias_bomb().encode(),
        "5:36",
        "the data holds more than 100000 values once aliases are expanded",
    ),
    "deep_aliases": (
        b"a: &a " + b"[" * 40 + b"]" * 40 + b"\nb: " + b"[" * 40 + b"*a" + b"]" * 40 + b"\n",
        "2:44",
        "nested deeper than 64 levels once aliases are expanded",
    ),
    "recursive_alias": (b"a: &a [1, *a]\n", "1:11", "alias *a is inside its own anchor"),
    "not_utf8": (b"flow: caf\xe9\n", "1:10", "the file is not UTF-8 text"),
    "huge_integer": (b"x: " + b"9" * 5000 + b"\n", "1:4", "invalid value '99999"),
    "binary_tag": (b"x: !!binary aGk=\n", "1:4", "binary values (!!binary) are not supported"),
    "python_tag": (b"x: !!python/object:os.system ls\n", "1:4", "the tag"),
    "set": (b"x: !!set {a, b}\n", "1:4", "sets (!!set) are not supported"),
    "key_is_a_list": (b"? [a, b]\n: c\n", "1:3", "a key must be a single value"),
    "tab_indent": (b"a:\n\tb: 1\n", "2:1", "found character '\\t' that cannot start any token"),
}

SECONDS = 2.0  # each hostile input must end within this (the alias bomb took 25 s)
PEAK_BYTES = 20 * 1024 * 1024  # and this much memory (it took 1.6 GB)


@pytest.mark.parametrize("name", HOSTILE)
def test_flow_loader_gives_a_positioned_finding(name: str, tmp_path: Path) -> None:
    data, where, message = HOSTILE[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(FlowError) as err:
            load_flow(path)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.findings[0].startswith(f"{path}:{where}: {message}"), err.value.findings
    assert elapsed < SECONDS
    assert peak < PEAK_BYTES


@pytest.mark.parametrize("name", HOSTILE)
def test_config_loader_gives_a_positioned_error(name: str, tmp_path: Path) -> None:
    data, where, message = HOSTILE[name]
    path = tmp_path / "callcontrol.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as err:
        load_config(path, {}, read_secrets=False)
    assert str(err.value).startswith(f"{path}:{where}: {message}")


def test_flows_check_prints_findings_for_every_hostile_file(tmp_path: Path) -> None:
    """The command itself, as a user runs it: one finding per file, exit 1, no traceback."""
    for name, (data, _, _) in HOSTILE.items():
        (tmp_path / f"{name}.yaml").write_bytes(data)
    config = tmp_path / "callcontrol.yaml"
    config.write_text(
        "asterisk:\n  ari: {password: {env: X}}\n  ami: {password: {env: X}}\n"
        f"flows: {{dir: {tmp_path}}}\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "callcontrol", "--config", str(config), "flows", "check",
         str(tmp_path), "--sounds", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert time.monotonic() - started < 60
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stdout.splitlines()
    for name, (_, where, message) in HOSTILE.items():
        prefix = f"{tmp_path / name}.yaml:{where}: error: {message}"
        assert [line for line in lines if line.startswith(f"{tmp_path / name}.yaml:")] == [
            line for line in lines if line.startswith(prefix)
        ] != [], name


def test_aliases_within_the_budget_still_work() -> None:
    text = (
        "defaults: &defaults {timeout: 5s, attempts: 2}\n"
        "menu: {<<: *defaults, attempts: 3}\n"
        "prompts: &p [hello, world]\n"
        "again: *p\n"
        "when: 2026-03-02\n"
        "count: !!str 12\n"
    )
    data, positions = load_yaml_with_positions(text, "x.yaml")
    assert data["menu"] == {"timeout": "5s", "attempts": 3}
    assert data["again"] == ["hello", "world"]
    assert data["count"] == "12"
    assert positions[("again",)] == (4, 1)


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as out:
        out.truncate(MAX_YAML_BYTES + 1)  # sparse: nothing to read, stat says how big
    with pytest.raises(FlowError, match=rf"big.yaml:1:1: flow file is {MAX_YAML_BYTES + 1} "):
        load_flow(path)
    with pytest.raises(YamlSyntaxError, match="over the limit"):
        load_yaml_with_positions("x" * (MAX_YAML_BYTES + 1), "x.yaml")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    with pytest.raises(FlowError, match=r"pipe\.yaml:1:1: cannot read flow: not a regular file"):
        load_flow(path)


def test_check_main_reports_a_hostile_file_and_checks_the_others(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    (tmp_path / "fine.yaml").write_text("flow: fine\nstart: bye\nsteps:\n  bye:\n    hangup: {}\n")
    out = __import__("io").StringIO()
    assert check_main([tmp_path], out=out) == 1
    assert out.getvalue() == (
        f"{tmp_path}/bomb.yaml:5:36: error: the data holds more than 100000 values once aliases"
        " are expanded\n"
    )


def test_config_base_dir_with_a_nul_byte(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "asterisk:\n  ari: {password: {env: X}}\n  ami: {password: {env: X}}\n"
        'base_dir: "a\\0b"\n'
    )
    with pytest.raises(ConfigError, match=r"c.yaml:4:1: base_dir: invalid path"):
        load_config(path, {}, read_secrets=False)
