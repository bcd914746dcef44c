"""Sandboxed ``{{ }}`` templates and ``if:`` expressions for IVR flows.

Built on jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`, tightened further:

- only ``{{ }}`` output and ``{% if %}`` blocks: no loops, macros, imports, includes or ``set``
  (so the number of operations a template runs is bounded by its length, itself bounded);
- no attribute starting with ``_``, no ``str.format`` (format-string attacks), and only a short
  allowlist of methods (``upper``, ``split``, ``get``, ``strftime``...); ``lipsum``, ``cycler``,
  ``joiner`` and ``namespace`` are gone; filters are an allowlist too (see :data:`_FILTERS`);
- **size budget, checked before a value is built**: every operator, filter, method call and
  ``~`` that builds a string, list or number first estimates the size of its result (the
  *weight* of a value: about the length of its text form, shared parts counted each time they
  appear, as ``string`` would print them) and refuses it past :data:`MAX_VALUE`; integers are
  bounded to 4096 bits, ``range()`` to 10 000 items per evaluation, values walked to a nesting
  of :data:`MAX_DEPTH`, sources to :data:`MAX_SOURCE` characters; string ``%`` formatting is
  refused;
- **time budget**: a deadline (default 250 ms) is checked on every attribute access, call,
  operator and inside every filter, before and after its work (each piece of work being
  bounded by the size budget, an evaluation overruns its deadline by at most one such piece);
- rendered output is bounded (default 64 KiB).

Budget overruns raise :class:`ExpressionLimit`; every other failure inside an evaluation is an
:class:`ExpressionError` too, never another exception type. :func:`static_problems` is what
``flows check`` asks: a template that does not compile, uses a refused construct, or overruns a
budget on its own (with no variables: the constant bombs) is reported before it goes live.

A missing variable or key renders empty in a template and is false in an ``if:``; every missing
name is reported in :attr:`Evaluation.missing` so the engine can note it on the call's timeline.

Secrets: ``{{ secrets.NAME }}`` reads the secrets given to :class:`Sandbox`. Masking is by
derivation: each ``{{ }}`` whose expression reads ``secrets`` (or a variable the caller names as
*tainted*, itself set from a secret) is recorded in :attr:`Evaluation.secret_parts`, whatever
the filters did to it. A :class:`Masker` replaces secrets and those parts with ``***`` in
anything about to be logged or stored, in their usual encodings too (percent-encoding, base64,
hex, JSON escapes, reversed; case-insensitively, so ``upper``/``lower`` forms are caught).
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from typing import Any
from urllib.parse import quote, quote_plus

from jinja2 import ChainableUndefined, Template, TemplateError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, pass_context
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from callcontrol.errors import CallControlError

MAX_OUTPUT = 64 * 1024
MAX_VALUE = 64 * 1024
"""The largest weight (about the text length) of any value an evaluation builds."""
MAX_SOURCE = 16 * 1024
MAX_DEPTH = 64
MAX_INT_BITS = 4096
MAX_RANGE = 10_000
TIME_LIMIT = 0.25
MASK = "***"
MIN_MASKED_PART = 4
"""Parts derived from a secret shorter than this are masked as whole values only (masking a
one-letter part inside every later text would make the timeline unreadable)."""

# fmt: off
_SAFE_METHODS: dict[type, frozenset[str]] = {
    str: frozenset((
        "upper", "lower", "strip", "lstrip", "rstrip", "startswith", "endswith", "split",
        "isdigit", "isalpha", "isalnum", "title", "capitalize", "count", "find",
    )),
    dict: frozenset(("get", "keys", "values", "items")),
    list: frozenset(("index", "count")),
    datetime: frozenset(("strftime", "isoformat", "weekday", "isoweekday", "date", "time")),
    date: frozenset(("strftime", "isoformat", "weekday", "isoweekday")),
    dtime: frozenset(("strftime", "isoformat")),
}
# Filters that only look at a value (its length, an item, a default, a number's rounding):
# deadline checked, nothing built.
_READING_FILTERS = (
    "abs", "count", "d", "default", "first", "float", "int", "last", "length", "round", "safe",
)
# Filters that build a new value: inputs and result bounded by MAX_VALUE, deadline checked.
# Reviewed and left out: attr, batch, center, dictsort, escape, filesizeformat, forceescape,
# format, groupby, indent, items, map, pprint, random, reject*, select*, slice, sort, striptags,
# unique, urlize, wordcount, wordwrap, xmlattr (no flow needs them; several loop over callables
# or pad to a size given as an argument).
_BUILDING_FILTERS = (
    "capitalize", "list", "lower", "max", "min", "string", "sum", "title", "tojson", "trim",
    "truncate", "upper", "urlencode",
)
# fmt: on
_ALLOWED_STATEMENTS = (nodes.Output, nodes.If)
_SECRETS = "secrets"


class ExpressionError(CallControlError):
    """A template or expression is invalid, unsafe, too costly, or failed while evaluating."""

    error_id = "flow_expression"


class ExpressionLimit(ExpressionError):
    """An evaluation overran a budget: time, size of a value, nesting, or source length."""

    error_id = "flow_expression_limit"


@dataclass(frozen=True)
class Evaluation:
    """The result of one evaluation, the names missing while computing it, and the text of
    every ``{{ }}`` part derived from a secret (for :class:`Masker`)."""

    value: Any
    missing: tuple[str, ...] = ()
    secret_parts: tuple[str, ...] = ()


@dataclass
class _Budget:
    deadline: float
    range_left: int = MAX_RANGE
    missing: list[str] = field(default_factory=list)
    secret_parts: list[str] = field(default_factory=list)


_budget: ContextVar[_Budget | None] = ContextVar("flow_expression_budget", default=None)


class _NotingUndefined(ChainableUndefined):
    """Chainable (``a.b.c`` of a missing ``a`` is undefined, not an error) and noted."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        budget = _budget.get()
        if budget is not None and self._undefined_name is not None:
            budget.missing.append(str(self._undefined_name))


def _check_deadline() -> None:
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise ExpressionLimit("expression took too long")


# --- the size budget --------------------------------------------------------------------------


def weight(value: Any, limit: int = MAX_VALUE) -> int:
    """About the length of ``value``'s text form, counting a shared part each time it appears
    (as printing it would); stops counting soon after passing ``limit``. Raises
    :class:`ExpressionLimit` for values nested deeper than :data:`MAX_DEPTH`."""
    memo: dict[int, int] = {}

    def walk(item: Any, depth: int) -> int:
        if isinstance(item, str):
            return len(item)
        if isinstance(item, bool) or item is None:
            return 5
        if isinstance(item, int):
            return item.bit_length() // 3 + 1
        if isinstance(item, float):
            return 24
        if isinstance(item, range):
            widest = max(abs(item.start), abs(item.stop)).bit_length() // 3 + 3
            return len(item) * widest
        if isinstance(item, Mapping):
            parts: Iterable[Any] = (part for pair in item.items() for part in pair)
        elif isinstance(item, list | tuple | set | frozenset | type({}.keys())
                        | type({}.values()) | type({}.items())):
            parts = item
        else:
            return 32
        known = memo.get(id(item))
        if known is not None:
            return known
        if depth >= MAX_DEPTH:
            raise ExpressionLimit(f"value nested more than {MAX_DEPTH} deep")
        total = 2
        for part in parts:
            total += walk(part, depth + 1) + 2
            if total > limit:
                return total  # over: the exact figure does not matter
        memo[id(item)] = total
        return total

    return walk(value, 0)


def _bound(value: Any, what: str) -> Any:
    if weight(value) > MAX_VALUE:
        raise ExpressionLimit(f"{what}: result larger than {MAX_VALUE} chars")
    return value


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | list | tuple)


def _bounded_range(*args: int) -> range:
    result = range(*args)
    budget = _budget.get()
    left = budget.range_left if budget is not None else MAX_RANGE
    left -= len(result)
    if left < 0:
        raise ExpressionLimit(f"range() over more than {MAX_RANGE} items")
    if budget is not None:
        budget.range_left = left
    return result


def _times(left: Any, right: Any) -> Any:
    for seq, count in ((left, right), (right, left)):
        if _is_sequence(seq) and isinstance(count, int) and weight(seq) * count > MAX_VALUE:
            raise ExpressionLimit("repetition result too large")
    both_int = isinstance(left, int) and isinstance(right, int)
    if both_int and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise ExpressionLimit("number too large")
    return left * right


def _power(left: Any, right: Any) -> Any:
    both_int = isinstance(left, int) and isinstance(right, int)
    if both_int and abs(left) > 1 and right * math.log2(abs(left)) > MAX_INT_BITS:
        raise ExpressionLimit("number too large")
    return left**right


def _plus(left: Any, right: Any) -> Any:
    if _is_sequence(left) and _is_sequence(right) and weight(left) + weight(right) > MAX_VALUE:
        raise ExpressionLimit("concatenation result too large")
    return left + right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise ExpressionError("string % formatting is not allowed")
    return left % right


@pass_context
def _concat(context: Context, values: list[Any]) -> str:
    """``a ~ b ~ c``, its size checked part by part before the string is built."""
    _check_deadline()
    total = 0
    for value in values:
        total += weight(value)
        if total > MAX_VALUE:
            raise ExpressionLimit("~ result too large")
    return "".join(str(value) for value in values)


@pass_context
def _join(context: Context, value: Any, d: str = "", attribute: Any = None) -> str:
    """``join``, its result size checked before it is built."""
    _check_deadline()
    _bound(value, "join input")
    items = list(value)
    if attribute is not None:
        items = [context.environment.getitem(item, attribute) for item in items]
    separator = str(d)
    if weight(items) + len(separator) * max(len(items) - 1, 0) > MAX_VALUE:
        raise ExpressionLimit("join: result too large")
    return separator.join(str(item) for item in items)


@pass_context
def _replace(
    context: Context, value: Any, old: str, new: str, count: int | None = None
) -> str:
    """``replace``, its result size checked before it is built."""
    _check_deadline()
    text, old, new = str(value), str(old), str(new)
    occurrences = text.count(old) if old else len(text) + 1
    if count is not None:
        occurrences = min(occurrences, max(count, 0))
    if len(text) + occurrences * max(len(new) - len(old), 0) > MAX_VALUE:
        raise ExpressionLimit("replace: result too large")
    return text.replace(old, new) if count is None else text.replace(old, new, count)


@pass_context
def _secret_part(context: Context, value: Any) -> Any:
    """Marks a ``{{ }}`` value derived from a secret (inserted by :class:`_Guard`)."""
    budget = _budget.get()
    if budget is not None and not isinstance(value, _NotingUndefined):
        budget.secret_parts.append(str(value))
    return value


def _guarded(name: str, builds: bool) -> Callable[..., Any]:
    """jinja2's filter ``name`` with the deadline checked around it and, for a filter that
    builds, its inputs and result bounded. Taking the context keeps jinja2 from running it
    at compile time (constant folding), outside any budget."""
    func = FILTERS[name]
    pass_arg = _PassArg.from_obj(func)

    @pass_context
    def guarded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        if builds:
            for item in (value, *args, *kwargs.values()):
                _bound(item, f"{name} input")
        if pass_arg is _PassArg.eval_context:
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif pass_arg is _PassArg.environment:
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        _check_deadline()
        return _bound(result, name) if builds else result

    return guarded


_FILTERS: dict[str, Callable[..., Any]] = {
    **{name: _guarded(name, builds=False) for name in _READING_FILTERS},
    **{name: _guarded(name, builds=True) for name in _BUILDING_FILTERS},
    "join": _join,
    "replace": _replace,
}
"""The filters flows may use (every other jinja2 filter is refused)."""


class _Guard(NodeTransformer):
    """Rewrites a parsed template before it is compiled: ``~`` goes through :func:`_concat`,
    and each ``{{ }}`` reading one of ``tainted`` is marked by :func:`_secret_part`."""

    def __init__(self, tainted: Collection[str]) -> None:
        self.tainted = tainted

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        inner = [self.visit(child) for child in node.nodes]
        values = nodes.List(inner, lineno=node.lineno)
        return nodes.Filter(values, "_concat", [], [], None, None, lineno=node.lineno)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        output = self.generic_visit(node)
        assert isinstance(output, nodes.Output)
        output.nodes = [self._mark(child) for child in output.nodes]
        return output

    def _mark(self, node: nodes.Expr) -> nodes.Expr:
        if isinstance(node, nodes.TemplateData) or not self._reads_tainted(node):
            return node
        return nodes.Filter(node, "_secret_part", [], [], None, None, lineno=node.lineno)

    def _reads_tainted(self, node: nodes.Node) -> bool:
        names = [node, *node.find_all(nodes.Name)] if isinstance(node, nodes.Name) else list(
            node.find_all(nodes.Name)
        )
        return any(isinstance(n, nodes.Name) and n.name in self.tainted for n in names)


def _bounded_text(value: Any) -> Any:
    """Finalizer of ``{{ }}`` values: refuse a value too large to print before printing it."""
    return value if isinstance(value, _NotingUndefined) else _bound(value, "{{ }} value")


def _url_quote(value: Any) -> str:
    if isinstance(value, _NotingUndefined) or value is None:
        return ""
    if isinstance(value, Markup):  # `| safe` opts a value out of encoding (a base URL)
        return str(value)
    return quote(str(_bound(value, "{{ }} value")), safe="")


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, finalize: Callable[[Any], Any]) -> None:
        super().__init__(undefined=_NotingUndefined, autoescape=False, finalize=finalize)
        self.globals.clear()
        self.globals["range"] = _bounded_range
        self.globals["dict"] = dict
        self.filters = {**_FILTERS, "_concat": _concat, "_secret_part": _secret_part}
        self.binop_table.update({"*": _times, "**": _power, "+": _plus, "%": _modulo})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if not callable(value):
            return True
        return any(isinstance(obj, kind) and attr in names for kind, names in _SAFE_METHODS.items())

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is not on the method allowlist: refused, not wrapped

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to {attribute!r} of {type(obj).__name__} is not allowed")

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_deadline()
        if attribute.startswith("_"):
            raise SecurityError(f"access to {attribute!r} is not allowed")
        if isinstance(obj, _NotingUndefined):
            return obj  # a.b.c of a missing a: still missing, noted once
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_deadline()
        if isinstance(argument, str) and argument.startswith("_"):
            raise SecurityError(f"access to {argument!r} is not allowed")
        if isinstance(obj, _NotingUndefined):
            return obj
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        for item in (*args, *kwargs.values()):
            _bound(item, "call argument")
        result = super().call(__context, __obj, *args, **kwargs)
        _check_deadline()
        return _bound(result, "call")


# --- masking ---------------------------------------------------------------------------------


def _encodings(value: str) -> set[str]:
    """``value`` as it may appear once encoded (case variants are matched by the masker)."""
    raw = value.encode()
    forms = {
        value,
        value[::-1],
        json.dumps(value)[1:-1],
        raw.hex(),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b32encode(raw).decode().rstrip("="),
    }
    for form in list(forms):
        forms.update((quote(form, safe=""), quote(form), quote_plus(form)))
    return {form for form in forms if form}


class Masker:
    """Replaces secret values, and values derived from them, with ``***``.

    Built from the secrets; :meth:`add` adds parts derived from them during a call (see
    :attr:`Evaluation.secret_parts`). Each value is matched in its encodings (see
    :func:`_encodings`), case-insensitively. Parts shorter than :data:`MIN_MASKED_PART` are
    masked only where a whole string equals them.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._whole: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values, min_length=1)

    def copy(self) -> Masker:
        """A masker with the same values, to which a call can add its own."""
        other = Masker()
        other._forms, other._whole, other._pattern = set(self._forms), set(self._whole), (
            self._pattern
        )
        return other

    def add(self, values: Iterable[str], *, min_length: int = MIN_MASKED_PART) -> None:
        """Mask ``values`` (and their encodings) from now on."""
        before = len(self._forms)
        for value in values:
            if len(value) >= min_length:
                self._forms |= _encodings(value)
            elif value:
                self._whole.add(value.lower())
        if len(self._forms) != before:
            longest_first = sorted(self._forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, longest_first)), re.IGNORECASE)

    def mask(self, text: str) -> str:
        """``text`` with every masked value replaced by ``***``."""
        if text.lower() in self._whole:
            return MASK
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def mask_value(self, value: Any) -> Any:
        """:meth:`mask` applied through nested dicts, lists and strings."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {k: self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_value(v) for v in value]
        return value


# --- the sandbox -----------------------------------------------------------------------------


class Sandbox:
    """Compiles and evaluates flow templates and expressions under the limits above.

    ``secrets`` are exposed to templates as ``secrets.NAME``; ``time_limit`` bounds one
    evaluation, ``max_output`` the rendered size. Compiled templates are cached.
    """

    def __init__(
        self,
        secrets: Mapping[str, str] | None = None,
        *,
        max_output: int = MAX_OUTPUT,
        time_limit: float = TIME_LIMIT,
    ) -> None:
        self._secrets = dict(secrets or {})
        self._max_output = max_output
        self._time_limit = time_limit
        self._env = _Environment(finalize=_bounded_text)
        self._url_env = _Environment(finalize=_url_quote)
        self._names: dict[str, frozenset[str]] = {}
        self._templates: dict[tuple[bool, str, frozenset[str]], Template] = {}
        self._masker = Masker(self._secrets.values())

    def check_template(self, source: str) -> None:
        """Raise :class:`ExpressionError` if ``source`` is not a valid, allowed template."""
        self._template(source, url_encode=False, tainted=())

    def check_expression(self, source: str) -> None:
        """Raise :class:`ExpressionError` if ``source`` is not a valid expression."""
        self._expression(source)

    def render(
        self,
        source: str,
        variables: Mapping[str, Any],
        *,
        url_encode: bool = False,
        tainted: Collection[str] = (),
    ) -> Evaluation:
        """Render a template to text; with ``url_encode`` every ``{{ }}`` value is URL-encoded
        (except values marked ``| safe``). ``{{ }}`` parts reading ``secrets`` or a variable
        named in ``tainted`` are listed in the result's ``secret_parts``."""
        template = self._template(source, url_encode=url_encode, tainted=tainted)
        with self._limits(source) as budget:
            parts: list[str] = []
            size = 0
            for chunk in template.generate(self._context(variables)):
                size += len(chunk)
                if size > self._max_output:
                    raise ExpressionLimit(f"template output over {self._max_output} chars")
                parts.append(chunk)
            return Evaluation("".join(parts), tuple(budget.missing), tuple(budget.secret_parts))

    def evaluate(self, source: str, variables: Mapping[str, Any]) -> Evaluation:
        """Evaluate an expression to its value (undefined -> ``None``)."""
        template = self._expression(source)
        with self._limits(source) as budget:
            context = template.new_context(self._context(variables))
            try:
                for _ in template.root_render_func(context):
                    pass
            except UndefinedError:
                return Evaluation(None, tuple(budget.missing) or (source,))
            value = _bound(context.vars["result"], "expression")
            if isinstance(value, _NotingUndefined):
                value = None
            return Evaluation(value, tuple(budget.missing))

    def test(self, source: str, variables: Mapping[str, Any]) -> Evaluation:
        """Evaluate an ``if:`` expression to a bool (missing names make it false)."""
        result = self.evaluate(source, variables)
        if result.missing and result.value is None:
            return Evaluation(False, result.missing)
        try:
            return Evaluation(bool(result.value), result.missing)
        except Exception as exc:
            raise ExpressionError(f"expression {source!r}: {exc}") from None

    def masker(self) -> Masker:
        """A masker for one call: the secrets now, the parts derived from them as they come."""
        return self._masker.copy()

    def mask(self, text: str) -> str:
        """Replace every secret value occurring in ``text`` (in any encoding) with ``***``."""
        return self._masker.mask(text)

    def mask_value(self, value: Any) -> Any:
        """:meth:`mask` applied through nested dicts, lists and strings."""
        return self._masker.mask_value(value)

    def _context(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        context = dict(variables)
        context[_SECRETS] = self._secrets
        return context

    @contextmanager
    def _limits(self, source: str) -> Iterator[_Budget]:
        """The budget of one evaluation; any failure inside it becomes an ExpressionError."""
        budget = _Budget(deadline=time.monotonic() + self._time_limit)
        token = _budget.set(budget)
        try:
            yield budget
        except ExpressionError:
            raise
        except (SecurityError, UndefinedError) as exc:
            raise ExpressionError(f"{source!r}: {exc}") from None
        except (MemoryError, RecursionError) as exc:
            raise ExpressionLimit(f"{source!r}: {type(exc).__name__}") from None
        except Exception as exc:
            raise ExpressionError(f"{source!r}: {type(exc).__name__}: {exc}") from None
        finally:
            _budget.reset(token)

    def _parse(self, source: str, parse: Callable[[], nodes.Node]) -> nodes.Node:
        if len(source) > MAX_SOURCE:
            raise ExpressionLimit(f"template longer than {MAX_SOURCE} chars")
        try:
            return parse()
        except TemplateError as exc:
            raise ExpressionError(f"invalid template {source!r}: {exc}") from None
        except (RecursionError, MemoryError):
            raise ExpressionLimit(f"template {source[:40]!r}... nested too deeply") from None

    def _compile(self, env: _Environment, tree: nodes.Template, source: str) -> Template:
        try:
            return env.from_string(tree)
        except TemplateError as exc:
            raise ExpressionError(f"invalid template {source!r}: {exc}") from None
        except (RecursionError, MemoryError, SyntaxError, ValueError):  # Python's own limits
            raise ExpressionLimit(f"template {source[:40]!r}... nested too deeply") from None

    def _template(self, source: str, *, url_encode: bool, tainted: Collection[str]) -> Template:
        names = self._names.get(source)
        if names is None:
            tree = self._checked_tree(source)
            names = frozenset(name.name for name in tree.find_all(nodes.Name))
            if len(self._names) < 4096:
                self._names[source] = names
        marked = names & ({_SECRETS} | set(tainted))
        key = (url_encode, source, marked)
        cached = self._templates.get(key)
        if cached is not None:
            return cached
        env = self._url_env if url_encode else self._env
        guarded = _Guard(marked).visit(self._checked_tree(source))
        template = self._compile(env, guarded, source)
        if len(self._templates) < 4096:
            self._templates[key] = template
        return template

    def _checked_tree(self, source: str) -> nodes.Template:
        tree = self._parse(source, lambda: self._env.parse(source))
        assert isinstance(tree, nodes.Template)
        for node in tree.find_all(nodes.Stmt):
            if not isinstance(node, _ALLOWED_STATEMENTS):
                raise ExpressionError(
                    f"template {source!r}: only {{{{ }}}} and {{% if %}} are allowed,"
                    f" not {type(node).__name__.lower()}"
                )
        return tree

    def _expression(self, source: str) -> Template:
        key = (False, "\x00expr\x00" + source, frozenset[str]())
        cached = self._templates.get(key)
        if cached is not None:
            return cached

        def parse() -> nodes.Node:
            parser = Parser(self._env, source, state="variable")
            expr = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateError(f"unexpected {parser.stream.current.value!r}")
            return expr

        expr = _Guard(()).visit(self._parse(source, parse))
        body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
        template = self._compile(self._env, nodes.Template(body, lineno=1), source)
        if len(self._templates) < 4096:
            self._templates[key] = template
        return template


_TRIAL = Sandbox()


def static_problems(source: str, *, expression: bool = False) -> list[str]:
    """What ``flows check`` reports about a template (``expression``: an ``if:`` expression)
    before it goes live: that it does not parse or uses a refused construct (a loop, ``set``,
    an unknown filter...), or that it overruns a budget on its own, evaluated once with no
    variables (the constant bombs: ``('a'*8192)|list|join('b'*8192)``). An empty list: fine.
    Failures that depend on the call's variables are left to run time."""
    try:
        if expression:
            _TRIAL.check_expression(source)
        else:
            _TRIAL.check_template(source)
    except ExpressionError as exc:
        return [str(exc)]
    try:
        if expression:
            _TRIAL.evaluate(source, {})
        else:
            _TRIAL.render(source, {})
    except ExpressionLimit as exc:
        return [f"{exc} (over the sandbox's budget even before any variable is set)"]
    except ExpressionError:
        pass  # needs the call's variables: judged at run time
    return []
