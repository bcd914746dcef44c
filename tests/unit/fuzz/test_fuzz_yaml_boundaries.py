"""Fuzzing the YAML boundaries: the flow loader + checker (and its expression checks) and the
config loader.

Whatever the text, each gives findings at positions (``PATH:LINE:COL: ...``) or a valid result,
never another exception, within a time and memory budget per example. ``make test`` runs a few
hundred examples in all (deterministic: derandomized, no example database);
``CALLCONTROL_FUZZ_EXAMPLES=N`` runs N examples per test with fresh randomness.
"""

from __future__ import annotations

import os
import re
import resource
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from callcontrol.config import Config, load_config
from callcontrol.errors import ConfigError
from callcontrol.flows.check import check_paths
from callcontrol.flows.exprcheck import expression_problems

EXAMPLES = int(os.environ.get("CALLCONTROL_FUZZ_EXAMPLES", "0"))
SECONDS_PER_EXAMPLE = 5.0  # the slowest honest example takes well under a second
PEAK_GROWTH_PER_EXAMPLE = 128 * 1024 * 1024

FUZZ = settings(
    max_examples=EXAMPLES or 50,
    derandomize=not EXAMPLES,
    database=None,
    deadline=None,  # timed below with a budget that does not flake on a busy machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what the inputs are made of ------------------------------------------------------------

YAML_CHARS = "[]{}:,-?&*!|>'\"#%@`\\ \t\n\r\x00\x85\ufeff\u2028aAz09._/+="
FLOW_WORDS = (
    "flow", "fuzz", "start", "steps", "variables", "schedules", "global_keys", "on_error",
    "on_hangup", "language", "play", "menu", "gather", "prompt", "options", "min_digits",
    "max_digits", "validate", "finish_on", "timeout", "attempts", "next", "failed", "branch",
    "if", "goto", "else", "set", "split", "http", "url", "method", "save_as", "queue", "name",
    "hours", "open", "closed", "timezone", "closed_dates", "record", "dial", "to",
    "goto_flow", "hangup", "sound", "file", "digits", "number", "<<",
)
EXPRESSIONS = (
    "{{ caller.number }}", "{{ x._y }}", "{{ x.format(1) }}", "{{ x|nosuch }}", "{{ lipsum() }}",
    "{% for a in b %}{% endfor %}", "{{ ", "caller.number == '1'", "digits.index('1')",
    "{{ secrets['__dict__'] }}", "{{ now.strftime('%H') }}", "{{ range(99999)|list }}",
)
SCALARS = st.one_of(
    st.sampled_from(FLOW_WORDS),
    st.sampled_from(EXPRESSIONS),
    st.sampled_from(("2024-13-45", "2026-02-30", "24:61", "1e999", "-0", "0x1F", "~", "5s")),
    st.text(max_size=12),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
KEYS = st.one_of(st.sampled_from(FLOW_WORDS), st.sampled_from("0123456789*#"), st.text(max_size=8))
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(KEYS, inner, max_size=6)
    ),
    max_leaves=40,
)


def _dump(data: Any) -> str:
    out = StringIO()
    YAML(typ="rt").dump(data, out)
    return out.getvalue()


@st.composite
def yaml_texts(draw: st.DrawFn, tops: tuple[str, ...]) -> str:
    """Mostly YAML made from the vocabulary of a flow or a config, then damaged: characters
    inserted, lines cut; sometimes text from YAML's special characters alone."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(alphabet=YAML_CHARS, max_size=300))
    data = draw(st.dictionaries(st.sampled_from(tops), TREES, max_size=len(tops)))
    text = _dump(data)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(alphabet=YAML_CHARS, min_size=1, max_size=6)) + text[at:]
    return text


FLOW_TEXTS = yaml_texts(("flow", "start", "steps", "variables", "schedules", "global_keys",
                         "on_error", "language"))
CONFIG_TEXTS = yaml_texts(tuple(Config.model_fields))


# --- the budget -----------------------------------------------------------------------------


def within_budget(run: Callable[[], Any]) -> Any:
    """``run()``, failing the example when it takes too long or raises the process's peak
    memory by too much (``ru_maxrss``: cheap enough to measure every example)."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.monotonic()
    result = run()
    elapsed = time.monotonic() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    assert elapsed < SECONDS_PER_EXAMPLE, f"took {elapsed:.1f} s"
    assert grown < PEAK_GROWTH_PER_EXAMPLE, f"peak memory grew by {grown / 1e6:.0f} MB"
    return result


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --- the properties -------------------------------------------------------------------------


@FUZZ
@given(text=FLOW_TEXTS)
def test_flow_check_gives_findings_never_a_traceback(folder: Path, text: str) -> None:
    path = folder / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    findings = within_budget(lambda: check_paths([path]))
    pattern = re.compile(rf"{re.escape(str(path))}:\d+:\d+: (error|warning): \S")
    for finding in findings:
        assert pattern.match(str(finding)), finding
        assert str(finding).isprintable(), finding  # one line, whatever the keys hold
        assert "Traceback" not in finding.message and "cannot load" not in finding.message
        assert "cannot check" not in finding.message


@FUZZ
@given(data=st.binary(max_size=400))
def test_flow_check_of_any_bytes(folder: Path, data: bytes) -> None:
    path = folder / "bytes.yaml"
    path.write_bytes(data)
    for finding in within_budget(lambda: check_paths([path])):
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: (error|warning): \S", str(finding))
        assert "cannot load" not in finding.message and "cannot check" not in finding.message


@FUZZ
@given(text=CONFIG_TEXTS)
def test_config_loader_gives_positioned_errors_never_a_traceback(
    folder: Path, text: str
) -> None:
    path = folder / "callcontrol.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")

    def load() -> str | None:
        try:
            load_config(path, {}, read_secrets=False)
        except ConfigError as exc:
            return str(exc)
        return None

    problem = within_budget(load)
    if problem is not None:
        for line in problem.splitlines():
            assert re.match(rf"{re.escape(str(path))}:\d+:\d+: \S", line), line
            assert "cannot load config" not in line, line


JINJA_CHARS = "{}%()[]|.,:'\"_ +-*/~<>=!#\nabcxyz019"


@FUZZ
@given(source=st.text(alphabet=JINJA_CHARS, max_size=200), condition=st.booleans())
def test_checking_an_expression_gives_problems_never_a_traceback(
    source: str, condition: bool
) -> None:
    problems = within_budget(lambda: expression_problems(source, condition=condition))
    for severity, message in problems:
        assert severity in ("error", "warning") and message
