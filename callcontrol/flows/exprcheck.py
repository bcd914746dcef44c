"""What the expression sandbox would refuse at run time, found before the flow runs.

Used by ``flows check`` on every ``{{ template }}`` and ``if:`` expression of a flow. The rules
are the sandbox's own (:mod:`callcontrol.flows.expressions`): nothing is restated here. A
template is compiled by the sandbox (syntax, statements other than ``{{ }}`` and ``{% if %}``,
unknown filters and tests); then each attribute access, constant subscript and call is tried
in the sandbox on one sample value of every kind an expression can meet (text, numbers, lists,
mappings, dates and times):

- refused, or not callable, on every kind: an *error* (the expression fails whatever the data:
  ``x._secret``, ``name.format(...)``, ``lipsum()``), and so is one refused on the kind of a
  literal receiver (``'abc'.items()``);
- refused on some kinds only: a *warning* (it fails when the value is of that kind at run time:
  ``digits.index('1')`` is allowed on a list, refused on text). A constant subscript
  (``x['key']``) reads the key when there is one, so it is an error only when refused on
  every kind (``x['_key']``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any, Literal

from jinja2 import Environment, TemplateSyntaxError, nodes

from callcontrol.flows.expressions import ExpressionError, Sandbox, static_problems

Severity = Literal["error", "warning"]

SAMPLES: dict[str, Any] = {
    "text": "",
    "number": 0,
    "decimal": 0.5,
    "list": [],
    "mapping": {},
    "date-time": datetime(2000, 1, 1),
    "date": date(2000, 1, 1),
    "time": time(0, 0),
}
"""One value of each kind a flow variable can hold (YAML, digits, JSON, ``now``)."""

MAX_NESTING = 40
"""Deepest expression tree checked (nested parentheses, attribute chains, filters)."""

_SANDBOX = Sandbox()
_PARSER = Environment()  # parsing only: the sandbox decides what is allowed


@dataclass(frozen=True)
class _Trial:
    """How one access behaves on each sample kind."""

    refused: tuple[str, ...]
    callable: tuple[str, ...]


def expression_problems(source: str, *, condition: bool) -> list[tuple[Severity, str]]:
    """The problems of a template (``condition=False``) or an ``if:`` expression, as
    (severity, message) pairs; empty when the sandbox would run it on any data."""
    if condition and "{{" in source:
        bare = source.strip().removeprefix("{{").removesuffix("}}").strip()
        return [("error", f"a condition is a bare expression: write {bare!r}, without {{{{ }}}}")]
    text = f"{{{{ {source} }}}}" if condition else source
    what = "expression" if condition else "template"
    try:
        tree = _PARSER.parse(text)
    except TemplateSyntaxError as exc:
        return [("error", f"{what} does not parse: {exc.message}")]
    except RecursionError:
        return [("error", f"{what} nested deeper than {MAX_NESTING} levels")]
    if _depth(tree) > MAX_NESTING:  # compiling it would take seconds or fail
        return [("error", f"{what} nested deeper than {MAX_NESTING} levels")]
    try:
        if condition:
            _SANDBOX.check_expression(source)
        else:
            _SANDBOX.check_template(source)
    except ExpressionError as exc:
        return [("error", f"{what} refused by the sandbox: {_reason(exc, source)}")]
    except Exception as exc:  # the sandbox failing otherwise: the call would fail too
        return [("error", f"{what} refused by the sandbox: {type(exc).__name__}: {exc}")]
    problems = list(_accesses(tree))
    # a template that overruns a budget with no variables at all (the constant bombs)
    problems.extend(("error", f"{what} {message}")
                    for message in static_problems(source, expression=condition))
    return problems


def _depth(tree: nodes.Node) -> int:
    deepest = 0
    todo = [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        todo.extend((child, depth + 1) for child in node.iter_child_nodes())
    return deepest


def _reason(exc: ExpressionError, source: str) -> str:
    text = str(exc)
    for prefix in (f"invalid template {source!r}: ", f"invalid expression {source!r}: "):
        text = text.removeprefix(prefix)
    return text.removeprefix(f"template {source!r}: ")


def _accesses(tree: nodes.Template) -> Iterator[tuple[Severity, str]]:
    called = {id(call.node) for call in tree.find_all(nodes.Call)}
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and not callable(_global(call.node.name)):
            yield "error", f"{call.node.name}() is not a function in flow expressions"
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            shown, trial = _show(node), _attribute(node.attr)
            if id(node) in called:
                shown += "()"
            literal = _literal_kind(node.node)
            yield from _verdict(shown, _show(node.node), trial, id(node) in called, literal)
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            # x['key'] reads the key when the mapping has it: only a refusal on every kind
            # (an underscore key) is sure to fail
            trial = _item(node.arg.value)
            if len(trial.refused) == len(SAMPLES):
                yield "error", f"{_show(node)} fails on every value: {_why(trial, False)}"


def _verdict(
    shown: str, receiver: str, trial: _Trial, called: bool, literal: str | None
) -> Iterator[tuple[Severity, str]]:
    works = trial.callable if called else tuple(k for k in SAMPLES if k not in trial.refused)
    fails = [k for k in SAMPLES if k not in works] if called else list(trial.refused)
    if literal is not None and literal in fails:
        yield "error", f"{shown} fails on a {literal} value: {_why(trial, called, literal)}"
    elif literal is None and not works:
        yield "error", f"{shown} fails on every value: {_why(trial, called)}"
    elif literal is None and trial.refused and (works or not called):
        refused = ", ".join(trial.refused)
        yield "warning", f"{shown} is refused by the sandbox when {receiver} is {refused}"


def _show(node: nodes.Node) -> str:
    """``a.b['c']`` as written (other receivers as ``(...)``)."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        return f"{_show(node.node)}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return f"{_show(node.node)}[{node.arg.value!r}]"
    if isinstance(node, nodes.Const):
        return repr(node.value)
    return "(...)"


def _why(trial: _Trial, called: bool, kind: str | None = None) -> str:
    if kind in trial.refused if kind is not None else trial.refused:
        return "the sandbox refuses it"
    return "no such method" if called else "no such attribute"


def _literal_kind(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const):
        return next((k for k, v in SAMPLES.items() if type(v) is type(node.value)), None)
    if isinstance(node, nodes.List | nodes.Tuple):
        return "list"
    if isinstance(node, nodes.Dict):
        return "mapping"
    return None


@lru_cache(maxsize=1024)
def _global(name: str) -> Any:
    return _SANDBOX.evaluate(name, {}).value


@lru_cache(maxsize=1024)
def _attribute(attr: str) -> _Trial:
    return _trial(f"x.{attr}", {})


@lru_cache(maxsize=1024)
def _item(key: str) -> _Trial:
    return _trial("x[key]", {"key": key})


def _trial(source: str, extra: dict[str, Any]) -> _Trial:
    refused: list[str] = []
    methods: list[str] = []
    for kind, sample in SAMPLES.items():
        try:
            value = _SANDBOX.evaluate(source, {"x": sample, **extra}).value
        except ExpressionError:
            refused.append(kind)
        else:
            if callable(value):
                methods.append(kind)
    return _Trial(tuple(refused), tuple(methods))
