"""Careless and hostile values inside a call (issue 11): every failure inside a step takes the
step's error path, within a bounded time; secrets and what is derived from them never reach the
timeline; prompt files stay inside the flows folder; gathers refuse costly regexes."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from test_engine import END, commands, run

from callcontrol.errors import FlowError
from callcontrol.flows.httpstep import HttpOutcome, HttpRequest
from callcontrol.flows.loader import load_flow_text
from callcontrol.flows.simulate import FixtureHttp, HttpFixture

SAY = """start: say
steps:
  say:
    play: {PROMPT}
    next: end
    error: sorry
  sorry:
    play: [sorry]
    next: end
""" + END


def say(prompt: str) -> str:
    return SAY.replace("{PROMPT}", prompt)


def took_error_exit(call: Any, result: Any) -> None:
    assert result.path == ("say", "sorry", "end")
    assert {"step": "say", "exit": "error", "to": "sorry"} in call.entries("exit")
    assert [args["media"] for args in commands(call, "play")] == [["sound:sorry"]]
    assert result.outcome == "completed"


@pytest.mark.parametrize(
    "prompt",
    [
        '{number: "Infinity"}',  # OverflowError out of the step before
        '{number: "-Infinity"}',
        '{number: "NaN"}',
        '{currency: "Infinity"}',
        '{currency: "sNaN"}',
        '{number: "1e2000000"}',  # 105 s of CPU before
        '{currency: "1e2000000"}',
        '{number: "1234567890123"}',
        '{number: "12_000"}',
        '{digits: "{{ \'1\' * 65 }}"}',
        '{date: "2026-13-45"}',
        '{sound: "{{ \'../../../etc/passwd\' }}"}',
        '{file: "{{ \'prompts/../../secret\' }}"}',
        '{file: "{{ \'/etc/passwd\' }}"}',
    ],
)
async def test_a_bad_prompt_value_takes_the_error_exit_quickly(tmp_path: Path, prompt: str) -> None:
    started = time.monotonic()
    result, call = await run(tmp_path, say(prompt), "P")
    assert time.monotonic() - started < 1.0
    took_error_exit(call, result)
    assert call.entries("step_error")[0]["step"] == "say"


async def test_a_language_variable_cannot_walk_out_of_the_prompts_folder(tmp_path: Path) -> None:
    text = say("[welcome]").replace("steps:\n", 'variables: {language: "../../etc"}\nsteps:\n')
    result, call = await run(tmp_path, text, "")
    assert result.outcome == "failed"  # the apology uses the language too: it fails, logged
    assert "not a language code" in call.entries("step_error")[0]["error"]


async def test_good_numbers_still_play(tmp_path: Path) -> None:
    prompts = '[{number: "-123456789012.5"}, {currency: "-3.5"}]'
    result, call = await run(tmp_path, say(prompts), "P P")
    assert result.path == ("say", "end")
    media = commands(call, "play")[0]["media"]
    assert media[0] == "number:-123456789012" and media[1] == "sound:digits/minus"


class Exploding:
    """An http client failing with an exception no step expects."""

    async def send(self, request: HttpRequest) -> HttpOutcome:
        raise OverflowError("boom")


async def test_any_exception_inside_a_step_takes_its_error_exit(tmp_path: Path) -> None:
    text = """start: lookup
steps:
  lookup:
    http: {url: "http://crm.test/x"}
    next: end
    error: sorry
  sorry:
    play: [sorry]
    next: end
""" + END
    result, call = await run(tmp_path, text, "P", http=Exploding())  # type: ignore[arg-type]
    assert result.path == ("lookup", "sorry", "end")
    assert call.entries("step_error")[0]["error"] == "OverflowError: boom"


# --- secrets: masked by derivation ------------------------------------------------------------

SECRET = "Zm9v+YmFy/s3cr3t=="


def secret_forms(secret: str) -> list[str]:
    """The secret as the timeline could show it: plain, case-changed, encoded."""
    forms = {secret, secret.upper(), secret.lower(), secret[::-1]}
    for form in list(forms):
        forms |= {quote(form, safe=""), quote(form), quote_plus(form), json.dumps(form)[1:-1]}
    raw = secret.encode()
    forms |= {base64.b64encode(raw).decode(), raw.hex(), secret[3:11], secret[3:11].upper()}
    return sorted(forms)


SECRET_FLOW = """start: lookup
variables: {base: "http://crm.test/c"}
steps:
  lookup:
    http:
      url: "{{ base | safe }}/{{ secrets.api_key }}?k={{ secrets.api_key|upper
        }}&p={{ secrets.api_key[3:11] }}"
      headers: {Authorization: "Bearer {{ secrets.api_key|upper }}"}
      json: {key: "{{ secrets.api_key|lower }}"}
    next: keep
    error: keep
  keep:
    set:
      token: "{{ secrets.api_key|upper }}"
      copy: "T={{ token|lower }}"
      again: "{{ copy[::-1] }}"
      plain: "no secret here"
    next: dial
  dial:
    dial: {to: "number:+3906{{ secrets.api_key|length }}"}
    next: say
    busy: say
    no_answer: say
    failed: say
  say:
    play: {number: "{{ again }}"}
    next: end
    error: end
""" + END


async def test_secrets_and_values_derived_from_them_never_reach_the_timeline(
    tmp_path: Path,
) -> None:
    http = FixtureHttp([HttpFixture(url="crm.test/c/", json={"ok": True})])
    result, call = await run(
        tmp_path, SECRET_FLOW, "", http=http, secrets={"api_key": SECRET}, dial_results=("next",)
    )
    assert result.path == ("lookup", "keep", "dial", "say", "end")
    assert http.requests[0].headers["Authorization"] == f"Bearer {SECRET.upper()}"
    assert "not a number" in call.entries("step_error")[0]["error"]  # the value is in the error
    logged = json.dumps([call.timeline, result.variables], default=str)
    for form in secret_forms(SECRET):
        assert form.lower() not in logged.lower(), form
    entry = call.entries("http")[0]
    assert entry["url"].startswith("http://crm.test/c/***?k=***&p=***")
    assert entry["headers"] == ["Authorization"]
    assert result.variables["plain"] == "no secret here"
    assert result.variables["token"] == "***"


async def test_a_variable_set_again_without_a_secret_is_shown_again(tmp_path: Path) -> None:
    text = """start: keep
steps:
  keep:
    set: {token: "{{ secrets.api_key }}"}
    next: reset
  reset:
    set: {token: "{{ 'visible' }}", other: "{{ token }}"}
    next: end
""" + END
    result, _ = await run(tmp_path, text, "", secrets={"api_key": SECRET})
    assert result.variables["token"] == "visible"
    assert result.variables["other"] == "visible"


# --- prompt files and gathers, refused when the flow loads ------------------------------------


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ('{file: "../outside"}', "'..'"),
        ('{file: "/etc/passwd"}', "relative path"),
        ('{file: "prompts/./x"}', "'.'"),
        ('{sound: "../../x"}', "'..'"),
        ('"a b"', "letters, digits"),
    ],
)
def test_escaping_prompt_names_are_refused_at_load(prompt: str, message: str) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow_text(f"flow: f\n{say(prompt)}", Path("f.yaml"))
    assert message in str(caught.value)


async def test_a_symlink_out_of_the_flows_folder_is_refused_at_run_time(tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "leak.wav").write_bytes(b"RIFF")
    (tmp_path / "prompts").mkdir()
    os.symlink(outside / "leak.wav", tmp_path / "prompts" / "leak.wav")
    os.symlink(outside, tmp_path / "prompts" / "dir")
    (tmp_path / "prompts" / "fine.wav").write_bytes(b"RIFF")
    for name in ("prompts/leak", "prompts/dir/leak"):
        result, call = await run(tmp_path, say(f'{{file: "{name}"}}'), "P")
        took_error_exit(call, result)
        assert "outside the flows folder" in call.entries("step_error")[0]["error"]
    result, call = await run(tmp_path, say('{file: "prompts/fine"}'), "P")
    assert result.path == ("say", "end")


GATHER = """start: ask
steps:
  ask:
    gather: {prompt: enter, max_digits: MAX, validate: "PATTERN"}
    next: end
    failed: end
""" + END


@pytest.mark.parametrize(
    "pattern",
    [r"^(\\d+)+$", r"(\\d|\\d\\d)*#", r"^(1|12)*$", r"((\\d{2,3})-?)+$", r"(\\d*)*"],
)
def test_a_regex_that_backtracks_exponentially_is_refused(pattern: str) -> None:
    text = GATHER.replace("MAX", "20").replace("PATTERN", pattern)
    with pytest.raises(FlowError, match="exponential time"):
        load_flow_text(f"flow: f\n{text}", Path("f.yaml"))


@pytest.mark.parametrize(
    "pattern", [r"^[0-9]{6,10}$", r"(\\d{3}-)+\\d{4}", r"^(\\d+)?$", r"^(0|1)*$", r"^\\d+\\*?$"]
)
def test_ordinary_regexes_are_accepted(pattern: str) -> None:
    text = GATHER.replace("MAX", "20").replace("PATTERN", pattern)
    load_flow_text(f"flow: f\n{text}", Path("f.yaml"))


def test_max_digits_is_capped_with_a_clear_error() -> None:
    load_flow_text(f"flow: f\n{GATHER.replace('MAX', '64').replace('PATTERN', '.*')}", Path("f"))
    with pytest.raises(FlowError, match="max_digits is at most 64"):
        load_flow_text(
            f"flow: f\n{GATHER.replace('MAX', '65').replace('PATTERN', '.*')}", Path("f.yaml")
        )
