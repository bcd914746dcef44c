"""``callcontrol flows check|simulate|graph|schema|test`` through the flows CLI."""

from __future__ import annotations

import argparse
import io
import json
import wave
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from callcontrol import cli as main_cli
from callcontrol.config import Config, load_config
from callcontrol.errors import ConfigError
from callcontrol.flows import cli

DESK = """\
flow: desk
start: office_hours
steps:
  office_hours:
    hours: office
    open: menu
    closed: bye
  menu:
    menu:
      prompt: welcome
      options: {"1": lookup, "2": billing}
      timeout: 1s
      attempts: 2
    failed: bye
  lookup:
    http:
      url: "http://127.0.0.1:9/customers/{{ who }}"
      timeout: 1s
      save_as: customer
    next: bye
    error: bye
  billing:
    queue: {name: billing}
    timeout: bye
    no_agents: bye
  bye:
    play: [goodbye]
    next: end
  end:
    hangup: {}
"""

OFFICE = {"timezone": "Europe/Rome", "open": {"mon-fri": ["08:00-18:00"]}}
MONDAY_10 = "2026-03-02T10:00:00+01:00"
SUNDAY_10 = "2026-03-01T10:00:00+01:00"


def write_wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0" * 160)


def make_root(tmp_path: Path) -> Path:
    """A fake Asterisk root whose stock sounds are 'goodbye' and 'digits/1'."""
    root = tmp_path / "asterisk-root"
    sounds = root / cli.SOUNDS_SUBDIR / "en"
    (sounds / "digits").mkdir(parents=True, exist_ok=True)
    (sounds / "goodbye.gsm").write_bytes(b"")
    (sounds / "digits" / "1.gsm").write_bytes(b"")
    return root


def make_flows(tmp_path: Path, text: str = DESK, name: str = "desk") -> Path:
    folder = tmp_path / "flows"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    write_wav(folder / "prompts" / "en" / "welcome.wav")
    return folder


def make_config(tmp_path: Path, **update: Any) -> Config:
    data: dict[str, Any] = {
        "base_dir": str(tmp_path),
        "asterisk": {
            "ari": {"password": {"file": "secret"}},
            "ami": {"password": {"file": "secret"}},
            "chroot": str(make_root(tmp_path)),
        },
        "flows": {"dir": "flows"},
        "queues": {"billing": {}},
        "schedules": {"office": OFFICE},
    }
    data.update(update)
    (tmp_path / "secret").write_text("not-used\n")
    return Config.model_validate(data)


def run(config: Config, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = io.StringIO()
    code = cli.main(parser.parse_args(argv), config, out=out)
    return code, out.getvalue()


# --- check ---------------------------------------------------------------------------------


def test_check_knows_config_queues_shared_schedules_and_stock_sounds(tmp_path: Path) -> None:
    make_flows(tmp_path)
    config = make_config(tmp_path)
    assert run(config, "check") == (0, "")  # default path: the config's flows.dir


def test_check_reports_errors_with_positions_and_exits_1(tmp_path: Path) -> None:
    folder = make_flows(tmp_path, DESK.replace("{name: billing}", "{name: biling}"))
    code, out = run(make_config(tmp_path), "check", str(folder))
    assert code == 1
    assert out == (
        f"{folder}/desk.yaml:23:19: error: unknown queue 'biling'; did you mean 'billing'?\n"
    )


def test_check_warnings_alone_exit_0(tmp_path: Path) -> None:
    folder = make_flows(tmp_path, DESK + "  spare:\n    hangup: {}\n")
    code, out = run(make_config(tmp_path), "check", str(folder / "desk.yaml"))
    assert (code, out) == (0, f"{folder}/desk.yaml:31:3: warning: step 'spare' is never reached\n")


def test_check_without_the_shared_schedule_or_stock_sound(tmp_path: Path) -> None:
    folder = make_flows(tmp_path)
    config = make_config(tmp_path, schedules={})
    empty_sounds = tmp_path / "no-sounds"
    (empty_sounds / "en").mkdir(parents=True)
    code, out = run(config, "check", "--sounds", str(empty_sounds))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"{folder}/desk.yaml:5:12: error: unknown schedule 'office'"
    assert lines[1].startswith(f"{folder}/desk.yaml:27:12: error: prompt 'goodbye' not found")


def test_check_refuses_a_bad_shared_schedule_in_the_config(tmp_path: Path) -> None:
    make_flows(tmp_path)
    config = make_config(tmp_path, schedules={"office": {"timezone": "Mars/Base"}})
    with pytest.raises(ConfigError, match=r"config schedules\.office\.timezone: unknown time"):
        run(config, "check")


def test_check_names_the_missing_sounds_folder(tmp_path: Path) -> None:
    make_flows(tmp_path)
    config = make_config(tmp_path)
    with pytest.raises(ConfigError, match="no Asterisk sounds folder"):
        run(config, "check", "--sounds", str(tmp_path / "nowhere"))


async def test_asterisk_root_from_config_takes_the_fast_path(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert await cli.asterisk_root(config) == tmp_path / "asterisk-root"


# --- simulate ------------------------------------------------------------------------------


def test_simulate_prints_path_outcome_and_variables(tmp_path: Path) -> None:
    make_flows(tmp_path)
    fixture = tmp_path / "http.yaml"
    fixture.write_text('- {url: /customers/42, json: {tier: vip}}\n')
    code, out = run(
        make_config(tmp_path),
        "simulate", "desk", "--digits", "1", "--var", "who=42",
        "--http-fixture", str(fixture), "--at", MONDAY_10,
    )
    assert code == 0
    assert out.splitlines() == [
        "path: office_hours -> menu -> lookup -> bye -> end",
        "outcome: completed",
        '  customer = {"tier": "vip"}',
        '  http = {"status": 200, "ms": 5}',
        '  who = "42"',
    ]


def test_simulate_json_on_a_closed_day_by_file_path(tmp_path: Path) -> None:
    folder = make_flows(tmp_path)
    code, out = run(
        make_config(tmp_path), "simulate", str(folder / "desk.yaml"), "--at", SUNDAY_10, "--json"
    )
    assert code == 0
    assert json.loads(out) == {
        "outcome": "completed",
        "path": ["office_hours", "bye", "end"],
        "variables": {},
    }


def test_simulate_http_error_and_menu_timeouts(tmp_path: Path) -> None:
    make_flows(tmp_path)
    fixture = tmp_path / "http.json"
    fixture.write_text('[{"url": "/customers/", "status": 500, "json": {}}]')
    code, out = run(
        make_config(tmp_path), "simulate", "desk", "--digits", "1",
        "--http-fixture", str(fixture), "--at", MONDAY_10, "--json",
    )
    assert code == 0
    assert json.loads(out)["path"] == ["office_hours", "menu", "lookup", "bye", "end"]
    assert json.loads(out)["variables"]["http"]["status"] == 500
    code, out = run(
        make_config(tmp_path), "simulate", "desk", "--digits", "TT", "--at", MONDAY_10, "--json"
    )
    assert code == 0
    assert json.loads(out)["path"] == ["office_hours", "menu", "bye", "end"]


def test_simulate_a_flow_that_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_flows(tmp_path, DESK.replace("start: office_hours", "start: [x]"))
    code, out = run(make_config(tmp_path), "simulate", "desk")
    assert (code, out) == (1, "")
    err = capsys.readouterr().err
    assert "desk.yaml:2:8: start: must be text" in err
    assert "flow 'desk' is not loadable" in err


def test_simulate_rejects_bad_arguments(tmp_path: Path) -> None:
    for argv in (["--var", "novalue"], ["--at", "2026-03-02T10:00:00"], ["--at", "monday"]):
        with pytest.raises(SystemExit):
            run(make_config(tmp_path), "simulate", "desk", *argv)


# --- graph and schema ----------------------------------------------------------------------


def test_graph_mermaid_and_dot(tmp_path: Path) -> None:
    folder = make_flows(tmp_path)
    config = make_config(tmp_path)
    code, mermaid = run(config, "graph", "desk")
    assert code == 0
    assert mermaid.startswith("flowchart TD\n")
    assert '-->|"1"|' in mermaid and '-->|"error"|' in mermaid
    code, dot = run(config, "graph", str(folder / "desk.yaml"), "--format", "dot")
    assert code == 0
    assert dot.startswith('digraph "desk" {')
    assert '"menu" -> "lookup" [label="1"];' in dot


def test_graph_of_a_broken_flow_prints_its_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_flows(tmp_path, DESK.replace("    failed: bye\n", ""))
    assert run(make_config(tmp_path), "graph", "desk") == (1, "")
    assert capsys.readouterr().err == (
        f"{folder}/desk.yaml:8:3: step 'menu' has no 'failed' exit, which a menu step needs\n"
    )


def test_graph_rejects_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        run(make_config(tmp_path), "graph", "desk", "--format", "png")


def test_schema_is_json_that_accepts_the_flow_and_refuses_a_typo(tmp_path: Path) -> None:
    code, out = run(make_config(tmp_path), "schema")
    assert code == 0
    schema = json.loads(out)
    validator = jsonschema.Draft202012Validator(schema)
    flow = YAML(typ="safe").load(DESK)
    assert list(validator.iter_errors(flow)) == []
    flow["steps"]["billing"]["queue"]["timeout"] = "10m"
    assert list(validator.iter_errors(flow))


# --- test ----------------------------------------------------------------------------------

CASES = """\
flow: desk
cases:
  - name: open, lookup
    at: "{monday}"
    digits: "1"
    vars: {{who: "42"}}
    http: [{{url: /customers/42, json: {{tier: vip}}}}]
    path: [office_hours, menu, lookup, bye, end]
    variables: {{customer: {{tier: vip}}}}
  - name: closed
    at: "{sunday}"
    path: [office_hours, {closed_next}, end]
"""


# Flow test cases run without the config: the flow brings its own schedule.
LOCAL_SCHEDULE = 'schedules:\n  office: {timezone: Europe/Rome, open: {mon-fri: ["08:00-18:00"]}}\n'


def write_cases(folder: Path, closed_next: str) -> Path:
    (folder / "desk.yaml").write_text(DESK.replace("steps:\n", LOCAL_SCHEDULE + "steps:\n", 1))
    tests = folder / "tests"
    tests.mkdir(exist_ok=True)
    path = tests / "desk.yaml"
    path.write_text(CASES.format(monday=MONDAY_10, sunday=SUNDAY_10, closed_next=closed_next))
    return path


def test_test_runs_the_cases_beside_the_flows(tmp_path: Path) -> None:
    folder = make_flows(tmp_path)
    path = write_cases(folder, "bye")
    code, out = run(make_config(tmp_path), "test")  # default: flows.dir/tests
    assert code == 0
    assert out.splitlines() == [
        f"PASS {path}: open, lookup",
        f"PASS {path}: closed",
        "2 passed, 0 failed",
    ]


def test_test_reports_a_failing_case_and_exits_1(tmp_path: Path) -> None:
    folder = make_flows(tmp_path)
    path = write_cases(folder, "menu")
    code, out = run(make_config(tmp_path), "test", str(path))
    assert code == 1
    assert f"FAIL {path}: closed" in out
    assert "1 passed, 1 failed" in out


# --- wiring into `callcontrol --config FILE flows ...` ------------------------------------


def test_callcontrol_flows_through_the_main_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_flows(tmp_path)
    config = make_config(tmp_path)
    data = config.model_dump(mode="json", exclude_defaults=True)
    config_file = tmp_path / "callcontrol.yaml"
    config_file.write_text(json.dumps(data))
    assert main_cli.main(["--config", str(config_file), "flows", "check"]) == 0
    assert main_cli.main(["--config", str(config_file), "flows", "graph", "desk"]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD\n")


def test_flows_check_needs_no_secret_from_the_config(tmp_path: Path) -> None:
    """`make flows-check` runs on a fresh checkout, where the demo's secrets don't exist yet."""
    make_flows(tmp_path)
    data = make_config(tmp_path).model_dump(mode="json", exclude_defaults=True)
    data["asterisk"]["ari"]["password"] = {"env": "CALLCONTROL_TEST_UNSET_SECRET"}
    config_file = tmp_path / "callcontrol.yaml"
    config_file.write_text(json.dumps(data))
    config = load_config(config_file, {}, read_secrets=False)
    assert run(config, "check") == (0, "")
    with pytest.raises(ConfigError, match="CALLCONTROL_TEST_UNSET_SECRET is not set"):
        load_config(config_file, {})
