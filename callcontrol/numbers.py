"""Phone numbers in E.164: how a number a person types (or a caller id) becomes ``+CCNSN``.

The rules, in order (:func:`normalize`):

1. spaces and the separators ``-``, ``.``, ``/``, ``(`` and ``)`` are dropped;
2. ``+`` then digits is international already;
3. ``00`` then digits is international (the ``00`` becomes ``+``);
4. other digits are national: the site's ``national_prefix`` (``0`` in most of Europe, empty
   in Italy, where the ``0`` belongs to the number) is dropped once and the site's
   ``country_code`` put in front; without a ``country_code`` a national number is refused;
5. the result must be ``+`` and 2 to 15 digits, not starting with ``0`` (E.164).

Anything else (letters, a ``+`` inside, a SIP user name) is refused with :class:`BadNumber`.
:func:`stored_forms` goes the other way: the forms a caller id may be stored in that
normalize to a given number, so a lookup can use the index of the raw column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEPARATORS = re.compile(r"[\s\-./()]")
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
MAX_INPUT = 64
"""Longest text taken as a number (separators included)."""


class BadNumber(ValueError):
    """Text that is not a phone number (the message says why)."""


@dataclass(frozen=True)
class NumberPlan:
    """How national numbers are written at the site (``site.country_code``,
    ``site.national_prefix``)."""

    country_code: str | None = None
    """Digits of the country calling code (``39``, ``1``); ``None``: national numbers are
    refused."""
    national_prefix: str = "0"
    """Digits a national number starts with that are not part of it (dropped once)."""


def normalize(text: str, plan: NumberPlan) -> str:
    """``text`` as an E.164 number (``+`` and digits); raise :class:`BadNumber`."""
    if len(text) > MAX_INPUT:
        raise BadNumber(f"a number has at most {MAX_INPUT} characters")
    compact = SEPARATORS.sub("", text)
    if compact.startswith("+"):
        digits, international = compact[1:], True
    elif compact.startswith("00"):
        digits, international = compact[2:], True
    else:
        digits, international = compact, False
    if not digits or not digits.isascii() or not digits.isdigit():
        raise BadNumber("a number holds digits, optionally after '+' or '00', and separators "
                        "(space - . / ( )) only")
    if not international:
        if plan.country_code is None:
            raise BadNumber("a national number needs site.country_code; write it with '+' and "
                            "the country code")
        prefix = plan.national_prefix
        if prefix and digits.startswith(prefix):
            digits = digits[len(prefix):]
        digits = plan.country_code + digits
    number = "+" + digits
    if not E164.fullmatch(number):
        raise BadNumber(f"{number} is not an E.164 number ('+', then 2 to 15 digits, the first "
                        "not 0)")
    return number


def stored_forms(number: str, plan: NumberPlan) -> list[str]:
    """The separator-free forms a caller id may hold that :func:`normalize` maps to
    ``number`` (itself E.164): ``+CC...``, ``00CC...`` and, in the site's country, the
    national form. Every form returned normalizes back to ``number``."""
    if not E164.fullmatch(number):
        raise BadNumber(f"{number} is not an E.164 number")
    digits = number[1:]
    forms = [number, "00" + digits]
    cc = plan.country_code
    if cc is not None and digits.startswith(cc) and len(digits) > len(cc):
        national = plan.national_prefix + digits[len(cc):]
        if not national.startswith("00"):
            forms.append(national)
    return [f for f in dict.fromkeys(forms) if _maps_to(f, number, plan)]


def _maps_to(form: str, number: str, plan: NumberPlan) -> bool:
    try:
        return normalize(form, plan) == number
    except BadNumber:
        return False
