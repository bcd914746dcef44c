"""Sandboxed ``{{ }}`` templates and ``if:`` expressions for IVR flows.

Built on jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment`, tightened further:

- only ``{{ }}`` output and ``{% if %}`` blocks: no loops, macros, imports, includes or ``set``
  (so the work a template can do is bounded by its length);
- no attribute starting with ``_``, no ``str.format`` (format-string attacks), and only a short
  allowlist of methods (``upper``, ``split``, ``get``, ``strftime``...); ``lipsum``, ``cycler``,
  ``joiner`` and ``namespace`` are gone; filters are an allowlist too;
- ``*``, ``**``, ``+`` and ``%`` refuse results larger than the output bound (64 KiB, 4096 bits
  for integers); ``range()`` is bounded per evaluation; string ``%`` formatting is refused;
- a deadline (default 250 ms) is checked on every attribute access, call and operator;
- rendered output is bounded (default 64 KiB).

A missing variable or key renders empty in a template and is false in an ``if:``; every missing
name is reported in :attr:`Evaluation.missing` so the engine can note it on the call's timeline.
``{{ secrets.NAME }}`` reads the secrets given to :class:`Sandbox`; :meth:`Sandbox.mask`
replaces their values with ``***`` in anything about to be logged or stored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from typing import Any
from urllib.parse import quote

from jinja2 import ChainableUndefined, Template, TemplateError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from callcontrol.errors import CallControlError

MAX_OUTPUT = 64 * 1024
MAX_INT_BITS = 4096
MAX_RANGE = 10_000
TIME_LIMIT = 0.25
MASK = "***"

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
_SAFE_FILTERS = (
    "abs", "capitalize", "d", "default", "first", "float", "int", "join", "last", "length",
    "count", "list", "lower", "max", "min", "round", "safe", "string", "sum", "title", "trim",
    "truncate", "upper", "urlencode", "tojson",
)
# fmt: on
_ALLOWED_STATEMENTS = (nodes.Output, nodes.If)


class ExpressionError(CallControlError):
    """A template or expression is invalid, unsafe, too costly, or failed while evaluating."""

    error_id = "flow_expression"


@dataclass(frozen=True)
class Evaluation:
    """The result of one evaluation and the names that were missing while computing it."""

    value: Any
    missing: tuple[str, ...] = ()


@dataclass
class _Budget:
    deadline: float
    range_left: int = MAX_RANGE
    missing: list[str] = field(default_factory=list)


_budget: ContextVar[_Budget | None] = ContextVar("flow_expression_budget", default=None)


class _NotingUndefined(ChainableUndefined):
    """Chainable (``a.b.c`` of a missing ``a`` is undefined, not an error) and noted."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        budget = _budget.get()
        if budget is not None and self._undefined_name is not None:
            budget.missing.append(str(self._undefined_name))


def _check(budget: _Budget | None) -> None:
    if budget is not None and time.monotonic() > budget.deadline:
        raise ExpressionError("expression took too long")


def _size(value: Any) -> int:
    if isinstance(value, str | list | tuple):
        return len(value)
    return 0


def _bounded_range(*args: int) -> range:
    result = range(*args)
    budget = _budget.get()
    if budget is not None:
        budget.range_left -= len(result)
        if budget.range_left < 0:
            raise ExpressionError(f"range() over more than {MAX_RANGE} items")
    elif len(result) > MAX_RANGE:
        raise ExpressionError(f"range() over more than {MAX_RANGE} items")
    return result


def _bounded_replace(value: str, old: str, new: str, count: int | None = None) -> str:
    occurrences = str(value).count(old) if old else len(str(value)) + 1
    if len(str(value)) + occurrences * max(len(new) - len(old), 0) > MAX_OUTPUT:
        raise ExpressionError("replace() result too large")
    return str(value).replace(old, new) if count is None else str(value).replace(old, new, count)


def _times(left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        if _size(seq) and isinstance(n, int) and _size(seq) * n > MAX_OUTPUT:
            raise ExpressionError("repetition result too large")
    both_int = isinstance(left, int) and isinstance(right, int)
    if both_int and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise ExpressionError("number too large")
    return left * right


def _power(left: Any, right: Any) -> Any:
    both_int = isinstance(left, int) and isinstance(right, int)
    if both_int and abs(left) > 1 and right * math.log2(abs(left)) > MAX_INT_BITS:
        raise ExpressionError("number too large")
    return left**right


def _plus(left: Any, right: Any) -> Any:
    if _size(left) + _size(right) > MAX_OUTPUT:
        raise ExpressionError("concatenation result too large")
    return left + right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise ExpressionError("string % formatting is not allowed")
    return left % right


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, finalize: Callable[[Any], Any] | None = None) -> None:
        super().__init__(undefined=_NotingUndefined, autoescape=False, finalize=finalize)
        self.globals.clear()
        self.globals["range"] = _bounded_range
        self.globals["dict"] = dict
        self.filters = {name: FILTERS[name] for name in _SAFE_FILTERS}
        self.filters["replace"] = _bounded_replace
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
        _check(_budget.get())
        if attribute.startswith("_"):
            raise SecurityError(f"access to {attribute!r} is not allowed")
        if isinstance(obj, _NotingUndefined):
            return obj  # a.b.c of a missing a: still missing, noted once
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check(_budget.get())
        if isinstance(argument, str) and argument.startswith("_"):
            raise SecurityError(f"access to {argument!r} is not allowed")
        if isinstance(obj, _NotingUndefined):
            return obj
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check(_budget.get())
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check(_budget.get())
        return super().call(__context, __obj, *args, **kwargs)


def _url_quote(value: Any) -> str:
    if isinstance(value, _NotingUndefined) or value is None:
        return ""
    if isinstance(value, Markup):  # `| safe` opts a value out of encoding (a base URL)
        return str(value)
    return quote(str(value), safe="")


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
        self._env = _Environment()
        self._url_env = _Environment(finalize=_url_quote)
        self._templates: dict[tuple[bool, str], Template] = {}

    def check_template(self, source: str) -> None:
        """Raise :class:`ExpressionError` if ``source`` is not a valid, allowed template."""
        self._template(source, url_encode=False)

    def check_expression(self, source: str) -> None:
        """Raise :class:`ExpressionError` if ``source`` is not a valid expression."""
        try:
            self._env.compile_expression(source)
        except TemplateError as exc:
            raise ExpressionError(f"invalid expression {source!r}: {exc}") from None

    def render(
        self, source: str, variables: Mapping[str, Any], *, url_encode: bool = False
    ) -> Evaluation:
        """Render a template to text; with ``url_encode`` every ``{{ }}`` value is URL-encoded
        (except values marked ``| safe``)."""
        template = self._template(source, url_encode=url_encode)
        with self._limits() as budget:
            try:
                parts: list[str] = []
                size = 0
                for chunk in template.generate(self._context(variables)):
                    size += len(chunk)
                    if size > self._max_output:
                        raise ExpressionError(f"template output over {self._max_output} chars")
                    parts.append(chunk)
                return Evaluation("".join(parts), tuple(budget.missing))
            except ExpressionError:
                raise
            except (SecurityError, UndefinedError) as exc:
                raise ExpressionError(f"template {source!r}: {exc}") from None
            except Exception as exc:
                raise ExpressionError(f"template {source!r}: {type(exc).__name__}: {exc}") from None

    def evaluate(self, source: str, variables: Mapping[str, Any]) -> Evaluation:
        """Evaluate an expression to its value (undefined -> ``None``)."""
        try:
            compiled = self._env.compile_expression(source, undefined_to_none=False)
        except TemplateError as exc:
            raise ExpressionError(f"invalid expression {source!r}: {exc}") from None
        with self._limits() as budget:
            try:
                value = compiled(**self._context(variables))
            except ExpressionError:
                raise
            except UndefinedError:
                return Evaluation(None, tuple(budget.missing) or (source,))
            except Exception as exc:
                raise ExpressionError(
                    f"expression {source!r}: {type(exc).__name__}: {exc}"
                ) from None
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

    def mask(self, text: str) -> str:
        """Replace every secret value occurring in ``text`` with ``***``."""
        for value in self._secrets.values():
            if value:
                text = text.replace(value, MASK)
        return text

    def mask_value(self, value: Any) -> Any:
        """:meth:`mask` applied through nested dicts, lists and strings."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, Mapping):
            return {k: self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_value(v) for v in value]
        return value

    def _context(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        context = dict(variables)
        context["secrets"] = self._secrets
        return context

    @contextmanager
    def _limits(self) -> Iterator[_Budget]:
        budget = _Budget(deadline=time.monotonic() + self._time_limit)
        token = _budget.set(budget)
        try:
            yield budget
        finally:
            _budget.reset(token)

    def _template(self, source: str, *, url_encode: bool) -> Template:
        key = (url_encode, source)
        cached = self._templates.get(key)
        if cached is not None:
            return cached
        env = self._url_env if url_encode else self._env
        try:
            tree = env.parse(source)
            for node in tree.find_all(nodes.Stmt):
                if not isinstance(node, _ALLOWED_STATEMENTS):
                    raise ExpressionError(
                        f"template {source!r}: only {{{{ }}}} and {{% if %}} are allowed,"
                        f" not {type(node).__name__.lower()}"
                    )
            template = env.from_string(tree)
        except TemplateError as exc:
            raise ExpressionError(f"invalid template {source!r}: {exc}") from None
        if len(self._templates) < 4096:
            self._templates[key] = template
        return template
