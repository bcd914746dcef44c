"""The IVR flow language of FLOWS.md as frozen pydantic models.

A flow file is a :class:`Flow`; each entry of ``steps`` is one of the step models below, chosen
by its single action key (``play``, ``menu``, ``gather``...). Exits are the step-level keys that
name the next step (``next``, ``failed``, ``timeout``...), plus the targets inside some actions
(menu options, branch ``goto``, queue ``keys``, split weights). :meth:`StepBase.exit_refs` is
the one table of a step's exits: the checker, the graph and the engine all read it.

The models are purely structural: references between steps, queues, schedules and prompt files
are checked by :mod:`callcontrol.flows.check`.
"""

from __future__ import annotations

import difflib
import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    StringConstraints,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from callcontrol.flows.durations import DURATION_PATTERN, parse_duration
from callcontrol.flows.prompts import name_problem
from callcontrol.flows.regexcheck import regex_problem

DTMF_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#")
PROMPT_FORMS = ("sound", "file", "digits", "number", "characters", "date", "time", "currency")
MAX_GATHER_DIGITS = 64
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def at_key(message: str, *keys: str, on_key: bool = False) -> PydanticCustomError:
    """The error of a whole mapping that belongs at one of its entries: the loader reports it
    at the value of the first of ``keys`` written in the file (at that key with ``on_key``)."""
    return PydanticCustomError(
        "at_key", "{message}", {"message": message, "keys": keys, "on_key": on_key}
    )


# --- scalar types -------------------------------------------------------------------------


def _dtmf_key(value: object) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError(f'invalid DTMF key {value!r}: use "0"-"9", "*" or "#" (quoted)')
    if isinstance(value, int):
        raise ValueError(
            f'DTMF key {value} must be quoted: write "{value}" (unquoted, YAML reads a number)'
        )
    if not isinstance(value, str) or value not in DTMF_KEYS:
        raise ValueError(f'invalid DTMF key {value!r}: use "0"-"9", "*" or "#"')
    return value


def _as_list(value: object) -> object:
    return value if isinstance(value, list) else [value]


def _duration(value: object) -> float:
    return parse_duration(value)


_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "description": "seconds, or 500ms / 5s / 2m / 1h",
}

DtmfKey = Annotated[
    str, BeforeValidator(_dtmf_key), WithJsonSchema({"type": "string", "enum": list(DTMF_KEYS)})
]
"""A DTMF key: ``"0"``-``"9"``, ``"*"`` or ``"#"``, always a string."""

Duration = Annotated[float, BeforeValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]
"""A duration in seconds, written ``500ms``, ``5s``, ``2m``, ``1h`` or as a bare number."""

Timeouts = Annotated[
    list[Duration],
    BeforeValidator(_as_list),
    WithJsonSchema(
        {"anyOf": [_DURATION_SCHEMA, {"type": "array", "items": _DURATION_SCHEMA, "minItems": 1}]}
    ),
    Field(min_length=1),
]
"""One timeout, or one per attempt (the last one repeats)."""

StepName = Annotated[str, StringConstraints(min_length=1)]
VarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
FlowName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]


def did_you_mean(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    """``"; did you mean 'x'?"`` when a candidate is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


# --- prompts --------------------------------------------------------------------------------


class Prompt(_Model):
    """One prompt: a sound name, a shipped file, or a value spoken by the language's rules.

    Written as ``NAME`` (same as ``{sound: NAME}``) or ``{FORM: VALUE}`` with FORM one of
    :data:`PROMPT_FORMS`; stored as ``kind`` + ``value``.
    """

    kind: Literal["sound", "file", "digits", "number", "characters", "date", "time", "currency"]
    value: str

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: object) -> dict[str, str]:
        if isinstance(data, str):
            _check_name("sound", data)
            return {"kind": "sound", "value": data}
        if isinstance(data, dict) and len(data) == 1:
            ((form, value),) = data.items()
            if form not in PROMPT_FORMS:
                raise at_key(
                    f"unknown prompt form {form!r}{did_you_mean(str(form), PROMPT_FORMS)}"
                    f" (use a sound name or one of: {', '.join(PROMPT_FORMS)})",
                    form,
                    on_key=True,
                )
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise at_key(f"prompt {form!r} needs a text value, got {value!r}", form)
            _check_name(form, str(value))
            return {"kind": form, "value": str(value)}
        raise ValueError(
            f"a prompt is a sound name or a mapping with one of {', '.join(PROMPT_FORMS)}; "
            f"got {data!r}"
        )


def _check_name(form: str, value: str) -> None:
    """A sound or file prompt written without a template must be a plain relative name (the
    rendered value of a template is checked when it plays)."""
    if form in ("sound", "file") and "{{" not in value and "{%" not in value:
        problem = name_problem(value)
        if problem:
            raise ValueError(problem)


_PROMPT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": "a sound name"},
        *(
            {
                "type": "object",
                "properties": {form: {"type": ["string", "number"]}},
                "required": [form],
                "additionalProperties": False,
            }
            for form in PROMPT_FORMS
        ),
    ]
}

Prompts = Annotated[
    list[Prompt],
    BeforeValidator(_as_list),
    WithJsonSchema({"anyOf": [_PROMPT_SCHEMA, {"type": "array", "items": _PROMPT_SCHEMA}]}),
    Field(min_length=1),
]
"""One prompt or a list of prompts (played as one playback)."""


# --- schedules ------------------------------------------------------------------------------

_TIME = r"([01]\d|2[0-4]):([0-5]\d)"
_TIME_RANGE = re.compile(rf"^{_TIME}-{_TIME}$")


def parse_time_range(text: str) -> tuple[int, int]:
    """``"08:00-13:00"`` -> minutes since midnight ``(480, 780)``; the end may be before the
    start when the range crosses midnight. Raise :class:`ValueError` when malformed."""
    match = _TIME_RANGE.match(text)
    if match is None:
        raise ValueError(f"invalid time range {text!r}: write HH:MM-HH:MM, e.g. 08:00-13:00")
    start = int(match.group(1)) * 60 + int(match.group(2))
    end = int(match.group(3)) * 60 + int(match.group(4))
    if start > 24 * 60 or end > 24 * 60 or start == 24 * 60:
        raise ValueError(f"invalid time range {text!r}: hours run from 00:00 to 24:00")
    if start == end:
        raise ValueError(f"empty time range {text!r}")
    return start, end


def expand_days(text: str) -> list[int]:
    """``"mon-fri"`` -> ``[0, 1, 2, 3, 4]``; ``"sat"`` -> ``[5]``; ``"fri-mon"`` wraps."""
    parts = text.strip().lower().split("-")
    if len(parts) not in (1, 2) or any(p not in DAYS for p in parts):
        raise ValueError(
            f"invalid days {text!r}: use a day ({', '.join(DAYS)}) or a range like mon-fri"
        )
    first, last = DAYS.index(parts[0]), DAYS.index(parts[-1])
    return [(first + i) % 7 for i in range((last - first) % 7 + 1)]


def _time_range(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f'invalid time range {value!r}: write "HH:MM-HH:MM" (quoted)')
    parse_time_range(value)
    return value


def _days(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"invalid days {value!r}: use a day or a range like mon-fri")
    expand_days(value)
    return value.strip().lower()


def _closed_date(value: object) -> str:
    if isinstance(value, datetime):
        raise ValueError(f"a closed date is a day, not a time: {value!r}")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    full = text if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else f"2000-{text}"
    try:
        date.fromisoformat(full)
    except ValueError:
        raise ValueError(f"invalid date {text!r}: write YYYY-MM-DD or MM-DD (every year)") from None
    return text


def _closed_dates(value: object) -> object:
    if not isinstance(value, list):
        return value
    if any(isinstance(item, list | dict) for item in value):
        raise ValueError("closed_dates is a list of dates or a mapping of date -> hours")
    return {item: [] for item in value}


TimeRange = Annotated[
    str,
    BeforeValidator(_time_range),
    WithJsonSchema({"type": "string", "pattern": rf"^{_TIME}-{_TIME}$"}),
]
DayRange = Annotated[
    str,
    BeforeValidator(_days),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?$",
        }
    ),
]
ClosedDate = Annotated[
    str,
    BeforeValidator(_closed_date),
    WithJsonSchema({"type": "string", "pattern": r"^(\d{4}-)?\d{2}-\d{2}$"}),
]


class Schedule(_Model):
    """Weekly opening hours in a time zone, with closed dates (holidays or special hours)."""

    timezone: str
    open: dict[DayRange, list[TimeRange]] = Field(default_factory=dict)
    closed_dates: Annotated[
        dict[ClosedDate, list[TimeRange]],
        BeforeValidator(_closed_dates),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "array", "items": {"type": "string"}},
                    {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                ],
                "description": "YYYY-MM-DD or MM-DD, or a mapping of such dates to that day's "
                "hours ([] = closed all day)",
            }
        ),
    ] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Europe/Rome, UTC)") from None
        return value

    def zone(self) -> ZoneInfo:
        """The schedule's time zone."""
        return ZoneInfo(self.timezone)

    def weekly(self) -> dict[int, list[tuple[int, int]]]:
        """Weekday (0 = Monday) -> ranges in minutes since midnight (end < start crosses
        midnight into the next day)."""
        out: dict[int, list[tuple[int, int]]] = {day: [] for day in range(7)}
        for days, ranges in self.open.items():
            for day in expand_days(days):
                out[day].extend(parse_time_range(r) for r in ranges)
        return out

    def closed(self) -> dict[str, list[tuple[int, int]]]:
        """Closed date (``YYYY-MM-DD`` or ``MM-DD``) -> that day's own hours ([] = closed)."""
        return {
            day: [parse_time_range(r) for r in ranges] for day, ranges in self.closed_dates.items()
        }


# --- steps ----------------------------------------------------------------------------------


class ExitRef(NamedTuple):
    """One exit of a step: its name (the label), its target step and where it is written
    (a location relative to the step, e.g. ``("next",)`` or ``("menu", "options", "1")``)."""

    name: str
    target: str
    loc: tuple[str | int, ...]


class StepBase(_Model):
    """What every step has: ``tags``, the optional ``error`` exit, and its exits table."""

    KIND: ClassVar[str]
    EXITS: ClassVar[tuple[str, ...]] = ()
    """Exit keys written beside the action key (``error`` excepted)."""
    DEFAULTS: ClassVar[dict[str, str]] = {}
    """Optional exits and the exit they fall back to."""

    tags: list[str] = Field(default_factory=list)
    error: StepName | None = None

    @property
    def kind(self) -> str:
        """The action key: ``play``, ``menu``, ``gather``..."""
        return self.KIND

    def _exit_value(self, name: str) -> str | None:
        for attr, info in type(self).model_fields.items():
            if (info.alias or attr) == name:
                value = getattr(self, attr)
                return value if isinstance(value, str) else None
        raise KeyError(name)

    def _action_exits(self) -> list[ExitRef]:
        return []

    def exit_refs(self) -> list[ExitRef]:
        """Every exit that is set, in the order written by FLOWS.md: the action's own targets,
        the kind's named exits, then ``error``."""
        refs = list(self._action_exits())
        for name in (*self.EXITS, "error"):
            target = self._exit_value(name)
            if target is not None:
                refs.append(ExitRef(name, target, (name,)))
        return refs

    def exits(self) -> dict[str, str]:
        """Exit name -> target step, for every exit that is set."""
        return {ref.name: ref.target for ref in self.exit_refs()}

    def target(self, name: str) -> str | None:
        """The step an exit leads to, applying FLOWS.md's defaults for optional exits
        (``holiday``/``override`` -> ``closed``, ``full`` -> ``timeout``, ``empty`` -> ``next``);
        ``None`` when the exit is not set (``queue``'s ``after``: hang up)."""
        exits = self.exits()
        if name in exits:
            return exits[name]
        fallback = self.DEFAULTS.get(name)
        return exits.get(fallback) if fallback else None


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name} #{n}", n + 1
    taken.add(candidate)
    return candidate


class PlayStep(StepBase):
    """Play one prompt or a list; digits pressed are kept for the next menu or gather."""

    KIND: ClassVar[str] = "play"
    EXITS: ClassVar[tuple[str, ...]] = ("next",)

    play: Prompts
    barge_in: bool = False
    next: StepName


class MenuSpec(_Model):
    """The body of a ``menu`` step."""

    prompt: Prompts
    options: Annotated[dict[DtmfKey, StepName], Field(min_length=1)]
    timeout: Timeouts = Field(default_factory=lambda: [5.0])
    attempts: Annotated[int, Field(ge=1)] = 3
    invalid_prompt: Prompts | None = None
    timeout_prompt: Prompts | None = None
    barge_in: bool = True
    save_as: VarName | None = None


class MenuStep(StepBase):
    """Play a prompt and take the option of the key pressed; ``failed`` after the last try."""

    KIND: ClassVar[str] = "menu"
    EXITS: ClassVar[tuple[str, ...]] = ("failed",)

    menu: MenuSpec
    failed: StepName

    def _action_exits(self) -> list[ExitRef]:
        return [
            ExitRef(key, target, ("menu", "options", key))
            for key, target in self.menu.options.items()
            if target != "repeat"
        ]


def _finish_on(value: object) -> object:
    if value is None:
        raise ValueError(
            'empty: an unquoted # starts a YAML comment, so "finish_on: #" sets nothing; '
            'write finish_on: "#"'
        )
    return value


class GatherSpec(_Model):
    """The body of a ``gather`` step."""

    prompt: Prompts
    min_digits: Annotated[int, Field(ge=1)] = 1
    max_digits: Annotated[int, Field(ge=1)] = 20
    """At most :data:`MAX_GATHER_DIGITS`: keys pressed on a phone, and the bound on what a
    ``validate`` regex is matched against."""
    finish_on: Annotated[
        Literal["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#", "none"],
        BeforeValidator(_finish_on),
    ] = "#"
    timeout: Timeouts = Field(default_factory=lambda: [5.0])
    inter_digit_timeout: Duration = 3.0
    attempts: Annotated[int, Field(ge=1)] = 3
    pattern: str | None = Field(default=None, alias="validate")
    invalid_prompt: Prompts | None = None
    timeout_prompt: Prompts | None = None
    barge_in: bool = True
    save_as: VarName | None = None
    sensitive: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        problem = regex_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("max_digits")
    @classmethod
    def _capped(cls, value: int) -> int:
        if value > MAX_GATHER_DIGITS:
            raise ValueError(
                f"max_digits is at most {MAX_GATHER_DIGITS} (got {value}): a gather collects"
                " keys pressed on a phone"
            )
        return value

    @model_validator(mode="after")
    def _digits_in_order(self) -> GatherSpec:
        if self.min_digits > self.max_digits:
            raise at_key(
                f"min_digits ({self.min_digits}) is more than max_digits ({self.max_digits})",
                "max_digits",
                "min_digits",
            )
        return self


class GatherStep(StepBase):
    """Collect digits (account numbers, PINs); ``failed`` after the last try."""

    KIND: ClassVar[str] = "gather"
    EXITS: ClassVar[tuple[str, ...]] = ("next", "failed")

    gather: GatherSpec
    next: StepName
    failed: StepName


class BranchCase(_Model):
    """``{if: EXPR, goto: STEP}``."""

    condition: str = Field(alias="if")
    goto: StepName


class BranchStep(StepBase):
    """Go to the first case whose ``if`` is true, else to ``else``."""

    KIND: ClassVar[str] = "branch"
    EXITS: ClassVar[tuple[str, ...]] = ("else",)

    branch: Annotated[list[BranchCase], Field(min_length=1)]
    otherwise: StepName = Field(alias="else")

    def _action_exits(self) -> list[ExitRef]:
        taken: set[str] = set()
        return [
            ExitRef(_unique(f"if {case.condition}", taken), case.goto, ("branch", index, "goto"))
            for index, case in enumerate(self.branch)
        ]


class SetStep(StepBase):
    """Set variables to values or ``{{ templates }}`` (``language`` switches prompts)."""

    KIND: ClassVar[str] = "set"
    EXITS: ClassVar[tuple[str, ...]] = ("next",)

    set: Annotated[dict[VarName, Any], Field(min_length=1)]
    next: StepName


def _hours_kind(value: object) -> str:
    return "<name>" if isinstance(value, str) else "<schedule>"


class HoursStep(StepBase):
    """Go ``open`` or ``closed`` by a schedule (override, then closed dates, then weekly)."""

    KIND: ClassVar[str] = "hours"
    EXITS: ClassVar[tuple[str, ...]] = ("open", "closed", "holiday", "override")
    DEFAULTS: ClassVar[dict[str, str]] = {"holiday": "closed", "override": "closed"}

    hours: Annotated[
        Annotated[str, Tag("<name>")] | Annotated[Schedule, Tag("<schedule>")],
        Discriminator(_hours_kind),
    ]
    open: StepName
    closed: StepName
    holiday: StepName | None = None
    override: StepName | None = None


class HttpSpec(_Model):
    """The body of an ``http`` step."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, alias="json")
    timeout: Duration = 5.0
    save_as: VarName | None = None


class HttpStep(StepBase):
    """Call an HTTP JSON API; ``next`` on 2xx JSON, ``error`` on anything else."""

    KIND: ClassVar[str] = "http"
    EXITS: ClassVar[tuple[str, ...]] = ("next",)

    http: HttpSpec
    next: StepName


def _skills(value: object) -> object:
    return {name: 1 for name in value} if isinstance(value, list) else value


class QueueSpec(_Model):
    """The body of a ``queue`` step."""

    name: str
    priority: int = 0
    skills: Annotated[dict[str, int], BeforeValidator(_skills)] = Field(default_factory=dict)
    max_wait: Duration | None = None
    announce_position: Duration | None = None
    moh: str | None = None
    callback: bool = False
    keys: dict[DtmfKey, StepName] = Field(default_factory=dict)
    recording: str | None = None
    """A recording policy (config ``recording.policies``, or ``none``) for the leg with the
    agent, instead of the queue's or the flow's."""


class QueueStep(StepBase):
    """Wait in an ACD queue for an agent."""

    KIND: ClassVar[str] = "queue"
    EXITS: ClassVar[tuple[str, ...]] = ("timeout", "no_agents", "after", "full")
    DEFAULTS: ClassVar[dict[str, str]] = {"full": "timeout"}

    queue: QueueSpec
    timeout: StepName
    no_agents: StepName
    after: StepName | None = None
    full: StepName | None = None

    def _action_exits(self) -> list[ExitRef]:
        return [
            ExitRef(f"key {key}", target, ("queue", "keys", key))
            for key, target in self.queue.keys.items()
        ]


_DIAL_TO = re.compile(r"^(agent|endpoint|number):.+$")


class DialSpec(_Model):
    """The body of a ``dial`` step."""

    to: str
    timeout: Duration = 30.0
    caller_id: str | None = None
    via: str | None = None
    recording: str | None = None
    """A recording policy for the dialed leg, instead of the flow's."""

    @field_validator("to")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if not _DIAL_TO.match(value):
            raise ValueError(
                f"invalid dial target {value!r}: use agent:ID, endpoint:NAME or number:+E164"
            )
        kind, _, rest = value.partition(":")
        if kind == "number" and "{{" not in rest and not re.fullmatch(r"\+?[0-9]{2,15}", rest):
            raise ValueError(f"invalid number {rest!r}: write +E164 digits, e.g. +390612345678")
        return value


class DialStep(StepBase):
    """Call an agent, an endpoint or a number and bridge the caller with it."""

    KIND: ClassVar[str] = "dial"
    EXITS: ClassVar[tuple[str, ...]] = ("next", "busy", "no_answer", "failed")

    dial: DialSpec
    next: StepName
    busy: StepName
    no_answer: StepName
    failed: StepName


class RecordSpec(_Model):
    """The body of a ``record`` step."""

    prompt: Prompts | None = None
    max_duration: Duration = 120.0
    max_silence: Duration | None = None
    beep: bool = True
    finish_on: Annotated[Literal["#", "*", "any", "none"], BeforeValidator(_finish_on)] = "#"
    save_as: VarName | None = None


class RecordStep(StepBase):
    """Record the caller (voicemail); ``empty`` when nothing was recorded."""

    KIND: ClassVar[str] = "record"
    EXITS: ClassVar[tuple[str, ...]] = ("next", "empty")
    DEFAULTS: ClassVar[dict[str, str]] = {"empty": "next"}

    record: RecordSpec
    next: StepName
    empty: StepName | None = None


class SplitStep(StepBase):
    """Send calls to steps by weight (a hash of the call id decides)."""

    KIND: ClassVar[str] = "split"

    split: Annotated[dict[StepName, Annotated[int, Field(ge=0)]], Field(min_length=1)]

    @field_validator("split")
    @classmethod
    def _sums_to_100(cls, value: dict[str, int]) -> dict[str, int]:
        total = sum(value.values())
        if total != 100:
            raise at_key(
                f"split weights must sum to 100, they sum to {total}", *reversed(list(value))
            )
        return value

    def _action_exits(self) -> list[ExitRef]:
        taken: set[str] = set()
        return [
            ExitRef(_unique(f"{weight}%", taken), target, ("split", target))
            for target, weight in self.split.items()
        ]


class GotoFlowSpec(_Model):
    """The body of a ``goto_flow`` step."""

    flow: FlowName
    step: StepName | None = None


class GotoFlowStep(StepBase):
    """Continue in another flow (variables carried over)."""

    KIND: ClassVar[str] = "goto_flow"

    goto_flow: GotoFlowSpec


def _empty_mapping(value: object) -> object:
    return {} if value is None else value


class HangupSpec(_Model):
    """The body of a ``hangup`` step."""

    cause: Literal[
        "normal",
        "busy",
        "congestion",
        "no_answer",
        "timeout",
        "rejected",
        "unallocated",
        "normal_unspecified",
        "number_incomplete",
        "codec_mismatch",
        "interworking",
        "failure",
        "answered_elsewhere",
    ] = "normal"


class HangupStep(StepBase):
    """Hang up the call."""

    KIND: ClassVar[str] = "hangup"

    hangup: Annotated[HangupSpec, BeforeValidator(_empty_mapping)] = HangupSpec()


STEP_MODELS: dict[str, type[StepBase]] = {
    model.KIND: model
    for model in (
        PlayStep,
        MenuStep,
        GatherStep,
        BranchStep,
        SetStep,
        HoursStep,
        HttpStep,
        QueueStep,
        DialStep,
        RecordStep,
        SplitStep,
        GotoFlowStep,
        HangupStep,
    )
}
"""Action key -> step model."""

ALL_EXITS = frozenset(name for model in STEP_MODELS.values() for name in model.EXITS) | {"error"}
"""Every exit key some step kind has."""


def action_keys(step: object) -> list[str]:
    """The action keys written in a raw step mapping (exactly one is valid)."""
    return [key for key in step if key in STEP_MODELS] if isinstance(step, dict) else []


def _step_tag(value: object) -> str | None:
    if isinstance(value, StepBase):
        return f"<{value.kind}>"
    keys = action_keys(value)
    return f"<{keys[0]}>" if len(keys) == 1 else None


Step = Annotated[
    Union[  # noqa: UP007 - Tag()ged members read better in a Union[...] list
        Annotated[PlayStep, Tag("<play>")],
        Annotated[MenuStep, Tag("<menu>")],
        Annotated[GatherStep, Tag("<gather>")],
        Annotated[BranchStep, Tag("<branch>")],
        Annotated[SetStep, Tag("<set>")],
        Annotated[HoursStep, Tag("<hours>")],
        Annotated[HttpStep, Tag("<http>")],
        Annotated[QueueStep, Tag("<queue>")],
        Annotated[DialStep, Tag("<dial>")],
        Annotated[RecordStep, Tag("<record>")],
        Annotated[SplitStep, Tag("<split>")],
        Annotated[GotoFlowStep, Tag("<goto_flow>")],
        Annotated[HangupStep, Tag("<hangup>")],
    ],
    Discriminator(
        _step_tag,
        custom_error_type="step_action",
        custom_error_message="a step needs exactly one action key",
    ),
]
"""Any step; the action key picks the model."""


# --- the flow -------------------------------------------------------------------------------


class Flow(_Model):
    """One flow file. ``version`` is not written by users: the loader sets it to a hash of
    the file's bytes."""

    flow: FlowName
    description: str = ""
    language: str = "en"
    start: StepName
    variables: dict[VarName, Any] = Field(default_factory=dict)
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    steps: Annotated[dict[StepName, Step], Field(min_length=1)]
    global_keys: dict[DtmfKey, StepName] = Field(default_factory=dict)
    on_error: StepName | None = None
    on_hangup: StepName | None = None
    languages: list[str] = Field(default_factory=list)

    _version: str = PrivateAttr(default="")

    @property
    def version(self) -> str:
        """The content hash of the file the flow was loaded from (``""`` if not loaded)."""
        return self._version

    def with_version(self, version: str) -> Flow:
        """This flow, stamped with ``version`` (used by the loader)."""
        self._version = version
        return self

    def all_languages(self) -> list[str]:
        """``language`` followed by every other entry of ``languages``."""
        return [self.language, *(lang for lang in self.languages if lang != self.language)]
