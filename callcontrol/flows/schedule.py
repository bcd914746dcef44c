"""Business hours: is a schedule open at a given moment?

A schedule is written (in a flow's ``schedules:`` or the daemon's config) as::

    timezone: Europe/Rome
    open:                       # day spec -> list of "HH:MM-HH:MM" wall-clock ranges
      mon-fri: ["08:00-13:00", "14:00-20:00"]
      sat: ["09:00-13:00"]
      sun: ["22:00-02:00"]      # a range may cross midnight
    closed_dates: ["2026-12-25", "01-01"]      # or a mapping date -> that day's hours
    # closed_dates: {"2026-12-24": ["08:00-12:00"], "12-25": []}

Day specs are ``mon``..``sun``, ranges (``mon-fri``, ``fri-mon``), comma lists
(``mon,wed``), ``daily``. Dates are ``YYYY-MM-DD`` or ``MM-DD`` (every year).

The order of decision is: operator override, then holiday (closed dates), then weekly hours.

- A range crossing midnight belongs to the day it starts on and runs into the next calendar
  day, unless that next day is a holiday closed all day: a holiday wins its whole date.
- A date with its own hours replaces that weekday's hours; outside them the status is
  ``holiday``.
- Ranges are wall-clock times of the schedule's time zone: across a DST change "08:00" is
  still 08:00 local time (the nonexistent or repeated hour is simply wall-clock time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Status = Literal["open", "closed", "holiday", "override"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class TimeRange:
    """A wall-clock range in minutes since midnight; ``end <= start`` crosses midnight."""

    start: int
    end: int

    @property
    def crosses_midnight(self) -> bool:
        """True when the range runs into the next day (``22:00-02:00``)."""
        return self.end <= self.start

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        """Parse ``HH:MM-HH:MM`` (``24:00`` allowed as an end); raise ValueError."""
        try:
            first, second = (part.strip() for part in str(text).split("-"))
            start, end = _minutes(first), _minutes(second)
        except ValueError:
            raise ValueError(f"invalid time range {text!r}: expected HH:MM-HH:MM") from None
        if start == _DAY_MINUTES:
            raise ValueError(f"invalid time range {text!r}: cannot start at 24:00")
        return cls(start, end)


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    value = int(hours) * 60 + int(minutes)
    if not (0 <= int(hours) <= 24 and 0 <= int(minutes) < 60) or value > _DAY_MINUTES:
        raise ValueError(text)
    return value


def parse_days(spec: str) -> set[int]:
    """Weekday numbers (Monday 0) of a day spec like ``mon-fri``, ``sat,sun``, ``daily``."""
    days: set[int] = set()
    for part in str(spec).lower().replace(" ", "").split(","):
        if part in ("daily", "all", "mon-sun"):
            days.update(range(7))
            continue
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"invalid day spec {spec!r}: use mon..sun, mon-fri, sat,sun")
        start = DAYS.index(first)
        stop = DAYS.index(last) if last else start
        days.update((start + i) % 7 for i in range((stop - start) % 7 + 1))
    return days


def _parse_date_key(text: str) -> tuple[int | None, int, int]:
    parts = str(text).split("-")
    try:
        if len(parts) == 3:
            day = date(int(parts[0]), int(parts[1]), int(parts[2]))
            return day.year, day.month, day.day
        if len(parts) == 2:
            date(2000, int(parts[0]), int(parts[1]))  # validates (2000 is a leap year)
            return None, int(parts[0]), int(parts[1])
    except ValueError:
        pass
    raise ValueError(f"invalid date {text!r}: use YYYY-MM-DD or MM-DD")


@dataclass(frozen=True)
class ScheduleState:
    """The decision: ``status`` (which exit applies), whether callers are served, and why."""

    status: Status
    open: bool
    reason: str


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule (see the module docstring for the written form)."""

    timezone: ZoneInfo
    weekly: tuple[tuple[TimeRange, ...], ...]  # index 0 = Monday
    special: Mapping[tuple[int | None, int, int], tuple[TimeRange, ...]] = field(
        default_factory=dict
    )  # date key -> hours; () = closed all day

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], default_timezone: str = "UTC") -> Schedule:
        """Build from the YAML form; raise ValueError naming the bad field."""
        tz_name = str(data.get("timezone") or default_timezone)
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz_name!r}") from None
        weekly: list[list[TimeRange]] = [[] for _ in range(7)]
        for spec, ranges in (data.get("open") or {}).items():
            parsed = [TimeRange.parse(r) for r in ranges or []]
            for day in parse_days(spec):
                weekly[day].extend(parsed)
        special: dict[tuple[int | None, int, int], tuple[TimeRange, ...]] = {}
        closed = data.get("closed_dates") or []
        if isinstance(closed, Mapping):
            for key, ranges in closed.items():
                special[_parse_date_key(key)] = tuple(TimeRange.parse(r) for r in ranges or [])
        else:
            for key in closed:
                special[_parse_date_key(key)] = ()
        return cls(tz, tuple(tuple(day) for day in weekly), special)

    def _special_for(self, day: date) -> tuple[TimeRange, ...] | None:
        exact = self.special.get((day.year, day.month, day.day))
        if exact is not None:
            return exact
        return self.special.get((None, day.month, day.day))

    def _hours_for(self, day: date) -> tuple[TimeRange, ...]:
        special = self._special_for(day)
        return special if special is not None else self.weekly[day.weekday()]

    def state_at(self, moment: datetime) -> ScheduleState:
        """Decide holiday / open / closed at an aware datetime (overrides are not seen here)."""
        if moment.tzinfo is None:
            raise ValueError("schedule decisions need an aware datetime")
        local = moment.astimezone(self.timezone)
        today = local.date()
        minute = local.hour * 60 + local.minute
        special = self._special_for(today)
        if special == ():
            return ScheduleState("holiday", False, f"{today.isoformat()} is a closed date")
        hours = special if special is not None else self.weekly[today.weekday()]
        in_today = any(
            r.start <= minute < (_DAY_MINUTES if r.crosses_midnight else r.end) for r in hours
        )
        yesterday = today - timedelta(days=1)
        spill = any(r.crosses_midnight and minute < r.end for r in self._hours_for(yesterday))
        if in_today or spill:
            return ScheduleState("open", True, f"open at {local:%a %H:%M} {self.timezone.key}")
        if special is not None:
            return ScheduleState(
                "holiday", False, f"{today.isoformat()} has special hours, closed now"
            )
        return ScheduleState("closed", False, f"closed at {local:%a %H:%M} {self.timezone.key}")


@dataclass(frozen=True)
class Override:
    """An operator's forced state of one schedule, until a time (or until cleared)."""

    state: Literal["open", "closed"]
    until: datetime | None = None
    reason: str = ""

    def active_at(self, moment: datetime) -> bool:
        """True while the override applies."""
        return self.until is None or moment < self.until


class Overrides:
    """Operator overrides by schedule name; the daemon owns one and shares it with engines."""

    def __init__(self) -> None:
        self._by_name: dict[str, Override] = {}

    def set(
        self,
        name: str,
        state: Literal["open", "closed"],
        until: datetime | None = None,
        reason: str = "",
    ) -> Override:
        """Force schedule ``name`` open or closed until ``until`` (aware) or until cleared."""
        if until is not None and until.tzinfo is None:
            raise ValueError("an override's end must be an aware datetime")
        override = Override(state, until, reason)
        self._by_name[name] = override
        return override

    def clear(self, name: str) -> bool:
        """Remove an override; True when there was one."""
        return self._by_name.pop(name, None) is not None

    def get(self, name: str, moment: datetime) -> Override | None:
        """The override of ``name`` active at ``moment`` (expired ones are dropped)."""
        override = self._by_name.get(name)
        if override is not None and not override.active_at(moment):
            del self._by_name[name]
            return None
        return override

    def active(self, moment: datetime) -> dict[str, Override]:
        """Every override active at ``moment`` (for ``/health``)."""
        return {
            name: o for name in list(self._by_name) if (o := self.get(name, moment)) is not None
        }


def decide(
    schedule: Schedule,
    moment: datetime,
    *,
    name: str | None = None,
    overrides: Overrides | None = None,
) -> ScheduleState:
    """Decide a named schedule at ``moment``: override first, then holiday, then weekly."""
    if name is not None and overrides is not None:
        override = overrides.get(name, moment)
        if override is not None:
            until = f" until {override.until.isoformat()}" if override.until else ""
            return ScheduleState(
                "override", override.state == "open", f"forced {override.state}{until}"
            )
    return schedule.state_at(moment)
