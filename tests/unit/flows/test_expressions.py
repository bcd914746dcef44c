"""The flow sandbox: templates, if: expressions, missing values, secrets, and escapes refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callcontrol.flows.expressions import ExpressionError, Sandbox

VARS = {
    "account": "0123",
    "customer": {"tier": "vip", "name": "Ada"},
    "now": datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
}


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox({"CRM_TOKEN": "s3cr3t-token"})


def test_template_reads_variables_and_keys_digits_stay_strings(sandbox: Sandbox) -> None:
    result = sandbox.render("{{ account }}/{{ customer.tier }}/{{ now.strftime('%H:%M') }}", VARS)
    assert result.value == "0123/vip/10:30"
    assert result.missing == ()


def test_missing_values_render_empty_and_are_noted(sandbox: Sandbox) -> None:
    result = sandbox.render("[{{ nobody }}][{{ customer.missing.deeper }}]", VARS)
    assert result.value == "[][]"
    assert result.missing == ("nobody", "missing")


def test_if_is_false_on_missing_values_and_notes_them(sandbox: Sandbox) -> None:
    assert sandbox.test("customer.tier == 'vip'", VARS).value is True
    missing = sandbox.test("crm.tier == 'vip'", VARS)
    assert missing.value is False and missing.missing == ("crm",)
    ordered = sandbox.test("crm.level > 3", VARS)
    assert ordered.value is False and ordered.missing


def test_url_values_are_encoded_unless_marked_safe(sandbox: Sandbox) -> None:
    result = sandbox.render(
        "{{ base | safe }}/{{ q }}", {"base": "http://h/x", "q": "a b/&c"}, url_encode=True
    )
    assert result.value == "http://h/x/a%20b%2F%26c"


def test_secrets_are_readable_and_masked(sandbox: Sandbox) -> None:
    text = sandbox.render("Bearer {{ secrets.CRM_TOKEN }}", {}).value
    assert text == "Bearer s3cr3t-token"
    assert sandbox.mask(text) == "Bearer ***"
    assert sandbox.mask_value({"h": [text]}) == {"h": ["Bearer ***"]}


@pytest.mark.parametrize(
    "source",
    [
        "{{ account.__class__ }}",
        "{{ account.__class__.__mro__[1].__subclasses__() }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ customer.get.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ lipsum() }}",
        "{{ self._TemplateReference__context }}",
        "{{ customer['__class__'] }}",
        "{% import 'os' as os %}",
        "{% include 'x' %}",
        "{% for i in range(3) %}{{ i }}{% endfor %}",
        "{% set x = 1 %}",
        "{{ range(10**9) | list }}",
        "{{ range(100000) | length }}",
        "{{ 'x' * 10**9 }}",
        "{{ [1, 2] * 10**9 }}",
        "{{ 10 ** 100000 }}",
        "{{ '{0.__class__}'.format(account) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ account | center(999999999) }}",
        "{{ account | format(1) }}",
        "{{ account.replace('0', 'x') }}",
        "{{ customer.update({'tier': 'x'}) }}",
    ],
)
def test_escapes_and_costly_work_are_refused(sandbox: Sandbox, source: str) -> None:
    with pytest.raises(ExpressionError):
        sandbox.render(source, VARS)


def test_output_size_is_bounded() -> None:
    sandbox = Sandbox(max_output=100)
    assert sandbox.render("{{ 'x' * 100 }}", {}).value == "x" * 100
    with pytest.raises(ExpressionError, match="output"):
        sandbox.render("{{ 'x' * 60 }}{{ 'y' * 60 }}", {})


def test_time_bound_stops_a_long_evaluation() -> None:
    sandbox = Sandbox(time_limit=0.0)
    with pytest.raises(ExpressionError, match="too long"):
        sandbox.render("{{ account.upper() }}", VARS)


def test_invalid_expression_is_a_typed_error(sandbox: Sandbox) -> None:
    with pytest.raises(ExpressionError):
        sandbox.test("customer.tier ==", VARS)
    with pytest.raises(ExpressionError):
        sandbox.render("{{ 1 / 0 }}", {})
