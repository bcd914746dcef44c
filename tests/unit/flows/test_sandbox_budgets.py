"""The expression sandbox's budgets: sizes checked before values are built, the deadline
checked inside filters, and what ``flows check`` can tell before a template goes live."""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime

import pytest

from callcontrol.flows.expressions import (
    MAX_VALUE,
    ExpressionError,
    ExpressionLimit,
    Sandbox,
    static_problems,
)

# Issue 11's reproductions: 64 MB in 0.05 s, and 24 s / 1.3 GB before a MemoryError.
JOIN_BOMB = "(('a'*8192)|list|join('b'*8192))|length"
STRING_BOMB = "([[0]*65536]*65536)|string|length"
TIME_BUDGET = 0.5  # seconds: the 250 ms limit plus one bounded piece of work, on a busy machine
MEMORY_BUDGET = 8 * 1024 * 1024  # bytes allocated at the peak of one refused evaluation


def refused_within_budget(evaluate: object, source: str) -> ExpressionError:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ExpressionError) as caught:
            assert callable(evaluate)
            evaluate(source, {})
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < TIME_BUDGET, f"{source}: {seconds:.3f} s"
    assert peak < MEMORY_BUDGET, f"{source}: peak {peak} bytes"
    return caught.value


@pytest.mark.parametrize("source", [JOIN_BOMB, STRING_BOMB])
def test_issue_bombs_end_within_budget_with_a_clear_error(source: str) -> None:
    sandbox = Sandbox()
    for evaluate, text in ((sandbox.evaluate, source), (sandbox.render, f"{{{{ {source} }}}}")):
        error = refused_within_budget(evaluate, text)
        assert isinstance(error, ExpressionLimit)
        assert "too large" in str(error)


@pytest.mark.parametrize(
    "source",
    [
        "'x' * 70000",
        "[0] * 30000",
        "[[0] * 2000] * 2000",
        "('a' * 40000) + ('a' * 40000)",
        "[0] * 20000 + [0] * 20000",
        "'a' * 60000 ~ 'b' * 60000",
        "('a' * 60000)|list",
        "(range(9000)|list) * 3",
        "('ab' * 30000)|replace('a', 'x' * 1000)",
        "('a' * 1000)|join('b' * 1000)",
        "('a' * 100)|list|join('b' * 1000)",
        "[[0] * 8000, [0] * 8000, [0] * 8000]|string",
        "[[0] * 8000, [0] * 8000, [0] * 8000]|tojson",
        "{'a': 'x' * 40000, 'b': 'y' * 40000}|urlencode",
        "(('x' * 40000)|upper) ~ ('y' * 40000)",
        "range(20000)",
        "range(6000)|list + range(6000)|list",
        "10 ** 5000",
        "(2 ** 4000) * (2 ** 4000)",
        "'%s' % 1",
        "'{}'.format(1)",
        "'a'|format",
        "'a'|center(10**9)",
        "('x' * 1000).split('') ",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]|string",
    ],
)
def test_every_building_path_is_bounded_before_it_builds(source: str) -> None:
    refused_within_budget(Sandbox().evaluate, source)


def test_results_just_under_the_budget_are_built() -> None:
    sandbox = Sandbox()
    assert sandbox.evaluate("('x' * 60000)|length", {}).value == 60000
    assert sandbox.evaluate("(range(5000)|list)|join(',')|length", {}).value == 23889
    assert len(sandbox.render("{{ [1, 2, 3] * 1000 }}", {}).value) == 9000
    assert MAX_VALUE == 64 * 1024


def test_method_results_are_bounded() -> None:
    now = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    with pytest.raises(ExpressionLimit):
        Sandbox().evaluate("now.strftime('%c' * 30000)", {"now": now})


def test_the_deadline_is_checked_inside_filters() -> None:
    # Before: filters never looked at the deadline, so this rendered with no time left.
    sandbox = Sandbox(time_limit=0.0)
    with pytest.raises(ExpressionLimit, match="too long"):
        sandbox.render("{{ 'a'|upper }}", {})
    with pytest.raises(ExpressionLimit, match="too long"):
        sandbox.evaluate("'a' ~ 'b'", {})


def test_a_source_too_long_or_too_deep_is_a_clear_error() -> None:
    sandbox = Sandbox()
    with pytest.raises(ExpressionLimit, match="longer than"):
        sandbox.render("x" * 20_000 + "{{ 1 }}", {})
    for source in ("(" * 500 + "1" + ")" * 500, "[" * 3000 + "]" * 3000):
        with pytest.raises(ExpressionError):
            sandbox.evaluate(source, {})


def test_large_inputs_can_still_be_measured_but_not_rebuilt() -> None:
    body = {"entries": list(range(100_000))}
    sandbox = Sandbox()
    assert sandbox.evaluate("body.entries|length", {"body": body}).value == 100_000
    assert sandbox.evaluate("body.entries|first", {"body": body}).value == 0
    with pytest.raises(ExpressionLimit):
        sandbox.render("{{ body }}", {"body": body})


@pytest.mark.parametrize("source", [JOIN_BOMB, STRING_BOMB])
def test_flows_check_flags_the_bombs(source: str) -> None:
    (problem,) = static_problems(f"{{{{ {source} }}}}")
    assert "too large" in problem and "budget" in problem
    (problem,) = static_problems(source, expression=True)
    assert "too large" in problem


def test_flows_check_accepts_templates_that_need_variables() -> None:
    assert static_problems("{{ customer.name|upper }} {{ account * 3 }}") == []
    assert static_problems("{{ (items|join(sep))|length }}") == []
    assert static_problems("customer.tier == 'vip' and account|length > 3", expression=True) == []


def test_flows_check_reports_refused_constructs() -> None:
    assert "center" in static_problems("{{ x|center(3) }}")[0]
    assert "not for" in static_problems("{% for a in b %}{{ a }}{% endfor %}")[0]
    assert static_problems("{{ 1 +", expression=False)
