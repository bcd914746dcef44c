"""Checker warnings about likely mistakes: an http step with no error route, a step named
``repeat``."""

from __future__ import annotations

from pathlib import Path

from callcontrol.flows.check import CheckContext, check_paths

STOCK = CheckContext(stock_sounds={"en": {"goodbye"}})

HTTP_FLOW = """\
flow: lookup
start: ask
{on_error}steps:
  ask:
    http:
      url: "http://127.0.0.1/x"
    next: bye
{error}  bye:
    hangup: {{}}
  sorry:
    play: [goodbye]
    next: bye
"""


def findings(tmp_path: Path, name: str, text: str) -> list[str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return [str(f).removeprefix(f"{tmp_path}/") for f in check_paths([path], STOCK)]


def test_http_step_without_error_exit_or_on_error_is_a_warning(tmp_path: Path) -> None:
    text = HTTP_FLOW.format(on_error="", error="")
    assert findings(tmp_path, "lookup", text) == [
        "lookup.yaml:4:3: warning: http step 'ask' has no 'error' exit and the flow no "
        "'on_error': a failed request (timeout, connection error, non-2xx, invalid JSON) ends "
        "the call with an apology",
        "lookup.yaml:10:3: warning: step 'sorry' is never reached",
    ]


def test_http_step_with_an_error_exit_is_clean(tmp_path: Path) -> None:
    text = HTTP_FLOW.format(on_error="", error="    error: sorry\n")
    assert findings(tmp_path, "lookup", text) == []


def test_http_step_covered_by_on_error_is_clean(tmp_path: Path) -> None:
    text = HTTP_FLOW.format(on_error="on_error: sorry\n", error="")
    assert findings(tmp_path, "lookup", text) == []


def test_a_step_named_repeat_is_a_warning(tmp_path: Path) -> None:
    text = """\
flow: menus
start: main
steps:
  main:
    menu:
      prompt: goodbye
      options: {"1": repeat, "2": bye}
    failed: repeat
  repeat:
    play: [goodbye]
    next: bye
  bye:
    hangup: {}
"""
    assert findings(tmp_path, "menus", text) == [
        "menus.yaml:9:3: warning: step 'repeat' cannot be reached from a menu option: there "
        "'repeat' replays the prompt; rename the step",
    ]
