"""Turn a flow's prompts (FLOWS.md "Prompts") into ARI media URIs.

- ``NAME`` or ``{sound: NAME}``: a file ``<prompts>/<language>/NAME.*`` or ``<prompts>/NAME.*``
  shipped with the flows (played as ``sound:<path as the PBX sees it, without extension>``),
  else Asterisk's own sound ``sound:NAME`` in the flow's language.
- ``{file: prompts/NAME}``: a file under the flows folder, without the language lookup;
  confined to that folder (no absolute path, no ``..``, no symlink leading out of it).
- ``{digits: T}``, ``{number: T}``, ``{characters: T}``: ``digits:``, ``number:``,
  ``characters:`` of the rendered template ``T``.
- ``{date: T}`` (``YYYY-MM-DD``, or an ISO datetime), ``{time: T}`` (``HH:MM`` or an ISO
  datetime), ``{currency: T}`` (``12.50``): built from Asterisk's ``digits/`` sounds.
  English: "Monday, March 2nd, 2026"; "2 oh 5 p m" (12-hour clock, ``oclock`` on the hour);
  "12 dollars 50 cents" (``cents`` is not a stock sound: ship it). Other languages: weekday,
  day number, month, year; 24-hour "H M"; the amount followed by ``currency`` (ship a
  ``currency`` prompt naming the currency in that language).

An empty rendered value produces no media (the missing variable is noted by the caller).
Rendered values are bounded and validated before use: sound and file names are relative paths
of plain segments; numbers are decimals of at most 12 digits before the point (no exponent, no
``Infinity``/``NaN``); every spoken value is at most :data:`MAX_VALUE_CHARS` characters. Any
other value raises :class:`PromptError`, which the engine turns into the step's ``error`` exit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

from callcontrol.errors import CallControlError

AUDIO_EXTENSIONS = (".wav", ".ulaw", ".alaw", ".gsm", ".g722", ".sln")
MAX_VALUE_CHARS = 64
MAX_NAME_CHARS = 255
Render = Callable[[str], str]
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_NUMBER = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,12})?")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{1,8}){0,3}")


class PromptError(CallControlError):
    """A prompt cannot be turned into media (bad form or a value that is not a date...)."""

    error_id = "flow_prompt"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a sound or a prompt file (``None`` when it can): a relative
    path of plain segments (letters, digits, ``_ . + -``), no ``..``, at most 255 chars."""
    if len(name) > MAX_NAME_CHARS:
        return f"prompt name longer than {MAX_NAME_CHARS} chars"
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return f"prompt name {name!r} must be a relative path without '.' or '..' parts"
    if not all(_SEGMENT.fullmatch(p) for p in parts):
        return f"prompt name {name!r} may hold only letters, digits, '_', '.', '+', '-' and '/'"
    return None


def _checked_name(name: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise PromptError(problem)
    return name


def confined_file(flows_dir: Path, name: str) -> Path:
    """The path (without extension) of the ``{file: NAME}`` prompt under ``flows_dir``, refused
    with :class:`PromptError` when ``NAME`` is not a plain relative path or when it (or one of
    its ``NAME.*`` files) resolves outside ``flows_dir`` through a symlink."""
    base = flows_dir / PurePosixPath(_checked_name(name))
    root = flows_dir.resolve()
    candidates = [base.parent, *(base.with_name(base.name + ext) for ext in AUDIO_EXTENSIONS)]
    for candidate in candidates:
        if candidate.exists() and not candidate.resolve().is_relative_to(root):
            raise PromptError(f"prompt file {name!r} leads outside the flows folder")
    return base


def parse_number(text: str, what: str = "number") -> Decimal:
    """A decimal of at most 12 digits before the point (what Asterisk can say), else
    :class:`PromptError`; no exponent, ``Infinity`` or ``NaN``."""
    if not _NUMBER.fullmatch(text):
        raise PromptError(
            f"not a {what}: {text[:MAX_VALUE_CHARS]!r} (digits, an optional '-' and decimals;"
            " at most 12 digits before the point)"
        )
    return Decimal(text)


def _plain(prompt: Any) -> Any:
    """A flow model's ``Prompt`` (``kind`` + ``value``) as its written one-key mapping."""
    kind, value = getattr(prompt, "kind", None), getattr(prompt, "value", None)
    if isinstance(kind, str) and isinstance(value, str):
        return {kind: value}
    return prompt


def _ordinal(day: int) -> list[str]:
    if day <= 20 or day % 10 == 0:
        return [f"sound:digits/h-{day}"]
    return [f"sound:digits/{day - day % 10}", f"sound:digits/h-{day % 10}"]


def date_media(value: date, language: str) -> list[str]:
    """Say a date with Asterisk's ``digits/`` sounds."""
    weekday = f"sound:digits/day-{(value.weekday() + 1) % 7}"  # day-0 is Sunday
    month = f"sound:digits/mon-{value.month - 1}"
    if language.startswith("en"):
        return [weekday, month, *_ordinal(value.day), f"number:{value.year}"]
    return [weekday, f"number:{value.day}", month, f"number:{value.year}"]


def time_media(value: time, language: str) -> list[str]:
    """Say a wall-clock time with Asterisk's ``digits/`` sounds."""
    if not language.startswith("en"):
        return [f"number:{value.hour}", f"number:{value.minute}"]
    hour = value.hour % 12 or 12
    media = [f"number:{hour}"]
    if value.minute == 0:
        media.append("sound:digits/oclock")
    elif value.minute < 10:
        media += ["sound:digits/oh", f"number:{value.minute}"]
    else:
        media.append(f"number:{value.minute}")
    media.append("sound:digits/a-m" if value.hour < 12 else "sound:digits/p-m")
    return media


def currency_media(amount: Decimal, language: str) -> list[str]:
    """Say an amount of money (see the module docstring for the sounds used)."""
    units = int(abs(amount))
    cents = int((abs(amount) - units) * 100)
    media = ["sound:digits/minus"] if amount < 0 else []
    if not language.startswith("en"):
        return [
            *media,
            f"number:{units}",
            *([f"number:{cents}"] if cents else []),
            "sound:currency",
        ]
    media += [f"number:{units}", "sound:digits/dollars"]
    if cents:
        media += [f"number:{cents}", "sound:cents"]
    return media


def _parse_date(text: str) -> date:
    try:
        return datetime.fromisoformat(text).date() if "T" in text else date.fromisoformat(text)
    except ValueError:
        raise PromptError(f"not a date: {text!r}") from None


def _parse_time(text: str) -> time:
    try:
        return datetime.fromisoformat(text).time() if "T" in text else time.fromisoformat(text)
    except ValueError:
        raise PromptError(f"not a time: {text!r}") from None


class PromptResolver:
    """Resolves prompts against the flows' prompt folder.

    ``to_pbx`` maps a file path (as the daemon sees it) to the path Asterisk sees (bind mount
    or copy); by default the same path.
    """

    def __init__(self, prompts_dir: Path, to_pbx: Callable[[Path], str] = str) -> None:
        self.prompts_dir = prompts_dir
        self._to_pbx = to_pbx

    def find_file(self, name: str, language: str) -> Path | None:
        """The shipped file for prompt ``name`` in ``language``, or None."""
        if not _LANGUAGE.fullmatch(language):
            raise PromptError(f"not a language code: {language[:MAX_VALUE_CHARS]!r}")
        for folder in (self.prompts_dir / language, self.prompts_dir):
            for ext in AUDIO_EXTENSIONS:
                candidate = folder / f"{name}{ext}"
                if candidate.is_file():
                    return candidate
        return None

    def _sound(self, path: Path) -> str:
        return f"sound:{self._to_pbx(path.with_suffix(''))}"

    def resolve(self, prompts: Any, language: str, render: Render) -> list[str]:
        """Media URIs for one prompt or a list of prompts (played as one playback)."""
        prompts = _plain(prompts)
        if isinstance(prompts, str | Mapping):
            prompts = [prompts]
        if not isinstance(prompts, Sequence):
            raise PromptError(f"not a prompt: {prompts!r}")
        media: list[str] = []
        for prompt in prompts:
            media += self._one(_plain(prompt), language, render)
        return media

    def _one(self, prompt: Any, language: str, render: Render) -> list[str]:
        if isinstance(prompt, str):
            return self._named(render(prompt), language)
        if not isinstance(prompt, Mapping) or len(prompt) != 1:
            raise PromptError(f"a prompt is a name or a one-key mapping, got {prompt!r}")
        ((kind, raw),) = prompt.items()
        text = render(str(raw)).strip()
        if not text:
            return []
        if kind == "sound":
            return self._named(text, language)
        if kind == "file":
            return [self._sound(confined_file(self.prompts_dir.parent, text))]
        if len(text) > MAX_VALUE_CHARS:
            raise PromptError(f"{kind} value longer than {MAX_VALUE_CHARS} chars")
        if kind in ("digits", "characters"):
            return [f"{kind}:{text}"]
        if kind == "number":
            return [f"number:{int(parse_number(text))}"]
        if kind == "date":
            return date_media(_parse_date(text), language)
        if kind == "time":
            return time_media(_parse_time(text), language)
        if kind == "currency":
            return currency_media(parse_number(text, "amount"), language)
        raise PromptError(f"unknown prompt kind {kind!r}")

    def _named(self, name: str, language: str) -> list[str]:
        _checked_name(name)
        path = self.find_file(name, language)
        return [self._sound(path) if path is not None else f"sound:{name}"]
