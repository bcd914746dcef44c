"""Loader: every error of a file at once, each at the 1-based position of its key or value."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcontrol.errors import FlowError
from callcontrol.flows.durations import parse_duration
from callcontrol.flows.loader import load_flow, load_flow_text
from callcontrol.flows.model import Flow, GatherStep, PlayStep, SplitStep, expand_days

PATH = Path("demo.yaml")


def errors_of(text: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow_text(text, PATH)
    return caught.value.findings


def test_all_errors_of_a_file_are_reported_at_once_in_file_order() -> None:
    text = (
        "flow: demo\n"
        "start: ask\n"
        "steps:\n"
        "  ask:\n"
        "    gather:\n"
        "      prompt: hello-world\n"
        "      attempts: 0\n"
        "      timeout: soon\n"
        "    next: bye\n"
        "  bye:\n"
        "    hangup: {cause: sleepy}\n"
    )
    assert errors_of(text) == [
        "demo.yaml:4:3: step 'ask' has no 'failed' exit, which a gather step needs",
        "demo.yaml:7:17: steps.ask.gather.attempts: Input should be greater than or equal to 1",
        "demo.yaml:8:16: steps.ask.gather.timeout.0: invalid duration 'soon': "
        "use a number of seconds or 500ms, 5s, 2m, 1h",
        "demo.yaml:11:21: steps.bye.hangup.cause: Input should be 'normal', 'busy', "
        "'congestion', 'no_answer', 'timeout', 'rejected', 'unallocated', "
        "'normal_unspecified', 'number_incomplete', 'codec_mismatch', 'interworking', "
        "'failure' or 'answered_elsewhere'",
    ]


def test_missing_top_level_keys_point_at_the_file_start() -> None:
    assert errors_of("flow: demo\n") == [
        "demo.yaml:1:1: missing top-level key 'start'",
        "demo.yaml:1:1: missing top-level key 'steps'",
    ]


def test_unknown_field_in_a_nested_mapping_points_at_the_key() -> None:
    text = (
        "flow: demo\n"
        "start: menu\n"
        "steps:\n"
        "  menu:\n"
        "    menu:\n"
        "      prompt: hello-world\n"
        '      options: {"1": menu}\n'
        "      retries: 3\n"
        "    failed: menu\n"
    )
    assert errors_of(text) == [
        "demo.yaml:8:7: unknown field 'retries' in menu; did you mean 'attempts'?"
    ]


def test_unknown_field_in_a_branch_case() -> None:
    text = (
        "flow: demo\nstart: b\nsteps:\n  b:\n    branch:\n"
        "      - {if: 'x', goto: b, then: b}\n    else: b\n"
    )
    assert errors_of(text) == ["demo.yaml:6:28: unknown field 'then' in branch case"]


def test_loaded_flow_gives_positions_of_values_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(
        "flow: demo\nstart: hi\nsteps:\n  hi:\n    play: hello-world\n    next: bye\n"
        "  bye:\n    hangup:\n"
    )
    loaded = load_flow(path)
    assert loaded.path == path
    assert loaded.position(("steps", "hi", "next")) == (6, 11)
    assert loaded.position(("steps", "hi", "next"), value=False) == (6, 5)
    assert loaded.position(("steps", "hi", "play", 0)) == (5, 11)  # a wrapped single prompt
    step = loaded.flow.steps["hi"]
    assert isinstance(step, PlayStep)
    assert step.barge_in is False
    assert loaded.flow.steps["bye"].exits() == {}


def test_a_file_that_cannot_be_read_is_a_flow_error(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(tmp_path / "missing.yaml")
    assert caught.value.findings == [
        f"{tmp_path}/missing.yaml:1:1: cannot read flow: No such file or directory"
    ]


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_bytes(b"flow: d\xe9mo\n")
    with pytest.raises(FlowError, match=r"demo.yaml:1:8: the file is not UTF-8 text"):
        load_flow(path)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), (7, 7.0), (1.5, 1.5), ("3", 3.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 sec", "-1s", True, None, "1d", [5]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_days_wrap_around_the_week() -> None:
    assert expand_days("fri-mon") == [4, 5, 6, 0]
    assert expand_days("SAT") == [5]


def test_gather_defaults_and_per_attempt_timeouts() -> None:
    flow = Flow.model_validate(
        {
            "flow": "demo",
            "start": "pin",
            "steps": {
                "pin": {
                    "gather": {"prompt": [{"digits": 12}, "beep"], "timeout": ["3s", 5]},
                    "next": "bye",
                    "failed": "bye",
                },
                "ab": {"split": {"pin": 30, "bye": 70}},
                "bye": {"hangup": None},
            },
        }
    )
    pin = flow.steps["pin"]
    assert isinstance(pin, GatherStep)
    assert pin.gather.timeout == [3.0, 5.0]
    assert pin.gather.finish_on == "#"
    assert [(p.kind, p.value) for p in pin.gather.prompt] == [("digits", "12"), ("sound", "beep")]
    split = flow.steps["ab"]
    assert isinstance(split, SplitStep)
    assert split.exits() == {"30%": "pin", "70%": "bye"}
    assert flow.version == ""
