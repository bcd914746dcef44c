"""Fuzzing the expression sandbox: random expressions and templates get a value or a clear
:class:`ExpressionError`, never a traceback or another exception type, within a time and memory
budget.

The expressions are grown from a grammar of what flows write (numbers, strings, lists,
variables, secrets, every operator, the allowed filters and methods, some refused ones,
``range``, subscripts, conditionals), untyped and typed (strings, lists and numbers composed so
each step type-checks, which is how a costly value gets built); raw text with template
punctuation covers the parser. Hypothesis is told the memory and CPU each example used
(``target``), so it climbs towards the costliest inputs. ``make test`` runs a short,
derandomized pass (seconds) plus issue 11's bombs; ``CALLCONTROL_FUZZ_EXAMPLES=5000`` runs a
long, random one.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, example, given, settings, target
from hypothesis import strategies as st

from callcontrol.flows.expressions import (
    MAX_OUTPUT,
    Evaluation,
    ExpressionError,
    Sandbox,
    static_problems,
)

LONG_RUN = "CALLCONTROL_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("CALLCONTROL_FUZZ_EXAMPLES", "25"))
CPU_BUDGET = 1.0  # seconds of CPU per evaluation (the sandbox's limit is 250 ms)
MEMORY_BUDGET = 32 * 1024 * 1024  # bytes at the peak of one evaluation

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # measured below as CPU time, which a busy machine does not inflate
    derandomize=not LONG_RUN,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VARIABLES: dict[str, Any] = {
    "account": "0123",
    "customer": {"tier": "vip", "name": "Ada", "tags": ["a", "b"]},
    "items": list(range(1000)),
    "big": "x" * 60_000,
    "nested": [[[[1, 2], [3]], {"k": [4]}]],
    "now": datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
    "caller": {"number": "+390612345", "withheld": False},
}
SANDBOX = Sandbox({"api_key": "Zm9v+YmFy/s3cr3t=="})

ATOMS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(
        ["0", "1", "-1", "3", "8192", "65536", "10**9", "2**64", "1.5", "1e308", "True", "None"]
    ),
    st.text(alphabet="ab1 %{}'\\\"#", max_size=6).map(repr),
    st.sampled_from(
        ["account", "customer", "customer.tier", "customer.tags", "items", "big", "nested",
         "nobody", "nobody.deeper", "secrets.api_key", "secrets", "now", "caller.number",
         "customer['name']", "[]", "{}", "()", "range(5)", "dict(a=1)",
         "'ab' * 8192", "[0] * 8192", "big|list", "range(9000)|list"]
    ),
)
OPERATORS = ["*", "+", "-", "/", "//", "%", "**", "~", "==", "<", "in", "and", "or"]
FILTERS = [
    "abs", "capitalize", "count", "d", "default", "first", "float", "int", "join", "last",
    "length", "list", "lower", "max", "min", "replace", "round", "safe", "string", "sum",
    "title", "tojson", "trim", "truncate", "upper", "urlencode",
    "center", "format", "map", "batch", "wordwrap", "indent", "attr",  # refused
]
METHODS = ["upper", "split", "strip", "count", "find", "get", "items", "keys", "index",
           "strftime", "isoformat", "format", "__class__", "mro", "replace", "join"]


def _args(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(children, max_size=2).map(lambda xs: f"({', '.join(xs)})" if xs else "")


LARGE = st.sampled_from(["8192", "65536", "'ab' * 8192", "big", "[0] * 8192", "items"])
"""Operands that make a value large in one step: bombs are a few of these composed."""


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["*", "~", "+"]), LARGE).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(children, st.sampled_from(["join", "replace", "list", "string"]), LARGE).map(
            lambda t: f"({t[0]})|{t[1]}" + ("" if t[1] in ("list", "string") else f"({t[2]})")
        ),
        st.tuples(children, st.sampled_from(OPERATORS), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(children, st.sampled_from(FILTERS), _args(children)).map(
            lambda t: f"({t[0]})|{t[1]}{t[2]}"
        ),
        st.tuples(children, st.sampled_from(METHODS), _args(children)).map(
            lambda t: f"({t[0]}).{t[1]}{t[2] or '()'}"
        ),
        st.lists(children, max_size=4).map(lambda xs: f"[{', '.join(xs)}]"),
        st.tuples(children, children).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.tuples(children, children).map(lambda t: f"({t[0]})[{t[1]}:]"),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: f"range({', '.join(xs)})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        children.map(lambda a: f"(-{a})"),
        children.map(lambda a: f"(not {a})"),
    )


UNTYPED = st.recursive(ATOMS, _extend, max_leaves=14)

# Typed growth: strings, lists and numbers composed so that each step type-checks, which is how
# a costly expression is built (most untyped combinations fail on a type error first).
INTS: st.SearchStrategy[str] = st.deferred(
    lambda: st.one_of(
        st.sampled_from(["0", "2", "3", "100", "8192", "65536", "10**6"]),
        st.tuples(INTS, st.sampled_from(["*", "+", "**", "//"]), INTS).map(" ".join).map(
            lambda e: f"({e})"
        ),
        st.one_of(STRS, LISTS).map(lambda e: f"({e})|length"),
    )
)
STRS: st.SearchStrategy[str] = st.deferred(
    lambda: st.one_of(
        st.sampled_from(["'a'", "'ab'", "account", "big", "caller.number", "secrets.api_key"]),
        st.tuples(STRS, STRS).map(lambda t: f"({t[0]} ~ {t[1]})"),
        st.tuples(STRS, INTS).map(lambda t: f"({t[0]} * {t[1]})"),
        st.tuples(LISTS, STRS).map(lambda t: f"({t[0]})|join({t[1]})"),
        st.tuples(STRS, STRS, STRS).map(lambda t: f"({t[0]})|replace({t[1]}, {t[2]})"),
        st.one_of(STRS, LISTS, INTS).map(lambda e: f"({e})|string"),
        st.one_of(STRS, LISTS).map(lambda e: f"({e})|tojson"),
        STRS.map(lambda e: f"({e})|upper"),
        st.tuples(STRS, INTS).map(lambda t: f"({t[0]})[{t[1]}:]"),
    )
)
LISTS: st.SearchStrategy[str] = st.deferred(
    lambda: st.one_of(
        st.sampled_from(["[]", "[0]", "items", "customer.tags", "nested"]),
        st.lists(st.one_of(STRS, LISTS, INTS), max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
        st.tuples(LISTS, INTS).map(lambda t: f"({t[0]} * {t[1]})"),
        st.tuples(LISTS, LISTS).map(lambda t: f"({t[0]} + {t[1]})"),
        STRS.map(lambda e: f"({e})|list"),
        INTS.map(lambda e: f"range({e})|list"),
        st.tuples(STRS, STRS).map(lambda t: f"({t[0]}).split({t[1]})"),
    )
)
EXPRESSIONS = st.one_of(UNTYPED, STRS, LISTS, INTS)
TEMPLATES = st.lists(
    st.one_of(
        EXPRESSIONS.map(lambda e: "{{ " + e + " }}"),
        st.tuples(EXPRESSIONS, EXPRESSIONS).map(
            lambda t: "{% if " + t[0] + " %}[{{ " + t[1] + " }}]{% endif %}"
        ),
        st.text(alphabet="{}%()[]|~*'\"ab1 .#\n-", max_size=24),
    ),
    max_size=4,
).map("".join)


class Meter:
    """Runs evaluations within the budgets and tells Hypothesis the costliest one."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.peak = 0

    def run(self, evaluate: Callable[[], object]) -> object:
        """``evaluate``'s value, or the ExpressionError it raised; fail on anything else, or
        past the CPU or memory budget."""
        tracemalloc.start()
        started = time.process_time()
        try:
            try:
                outcome: object = evaluate()
            except ExpressionError as exc:
                outcome = exc
            cpu = time.process_time() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert cpu < CPU_BUDGET, f"{cpu:.2f} s of CPU"
        assert peak < MEMORY_BUDGET, f"peak of {peak} bytes"
        self.cpu, self.peak = max(self.cpu, cpu), max(self.peak, peak)
        return outcome

    def report(self) -> None:
        """Steer the search towards the costliest inputs."""
        target(float(self.peak), label="peak memory")
        target(self.cpu, label="cpu")


@FUZZ
@given(EXPRESSIONS)
@example("(('a'*8192)|list|join('b'*8192))|length")  # issue 11's bombs, always tried
@example("([[0]*65536]*65536)|string|length")
@example("((nested * 65536))|string")  # found by this test against the sandbox before
def test_random_expressions(source: str) -> None:
    meter = Meter()
    outcome = meter.run(lambda: SANDBOX.evaluate(source, VARIABLES))
    assert isinstance(outcome, Evaluation | ExpressionError)
    problems = meter.run(lambda: static_problems(source, expression=True))
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    meter.report()


@FUZZ
@given(TEMPLATES, st.booleans())
def test_random_templates(source: str, url_encode: bool) -> None:
    meter = Meter()
    outcome = meter.run(lambda: SANDBOX.render(source, VARIABLES, url_encode=url_encode))
    if isinstance(outcome, Evaluation):
        assert isinstance(outcome.value, str) and len(outcome.value) <= MAX_OUTPUT
    else:
        assert isinstance(outcome, ExpressionError)
    problems = meter.run(lambda: static_problems(source))
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    meter.report()


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text(source: str) -> None:
    meter = Meter()
    for evaluate in (
        lambda: SANDBOX.render(source, VARIABLES),
        lambda: SANDBOX.evaluate(source, VARIABLES),
        lambda: static_problems(source),
    ):
        outcome = meter.run(evaluate)
        assert isinstance(outcome, Evaluation | ExpressionError | list)
    meter.report()
