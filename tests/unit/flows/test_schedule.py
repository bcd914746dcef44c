"""Business hours with a fixed clock: DST changes, midnight-crossing ranges, closed dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callcontrol.flows.schedule import Overrides, Schedule, decide, parse_days

ROME = ZoneInfo("Europe/Rome")
OFFICE = Schedule.from_mapping(
    {
        "timezone": "Europe/Rome",
        "open": {
            "mon-fri": ["08:00-13:00", "14:00-20:00"],
            "sat": ["22:00-02:00"],
            "sun": ["02:30-03:30"],
        },
        "closed_dates": {"2026-12-25": [], "01-01": [], "2026-12-24": ["08:00-12:00"]},
    }
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_day_specs() -> None:
    assert parse_days("mon-fri") == {0, 1, 2, 3, 4}
    assert parse_days("fri-mon") == {4, 5, 6, 0}
    assert parse_days("sat,sun") == {5, 6}
    with pytest.raises(ValueError):
        parse_days("funday")


@pytest.mark.parametrize(
    ("moment", "status"),
    [
        # Winter (CET, UTC+1) Friday 27 March 2026: 07:30 UTC = 08:30 local.
        (utc(2026, 3, 27, 7, 30), "open"),
        (utc(2026, 3, 27, 6, 30), "closed"),  # 07:30 local
        # Summer (CEST, UTC+2) from Sunday 29 March: Monday 06:30 UTC = 08:30 local.
        (utc(2026, 3, 30, 6, 30), "open"),
        (utc(2026, 3, 30, 5, 30), "closed"),  # 07:30 local
        (utc(2026, 3, 30, 17, 59), "open"),  # 19:59 local
        (utc(2026, 3, 30, 18, 0), "closed"),  # 20:00 local
        # Back to CET on Sunday 25 October: Monday 26, 07:00 UTC = 08:00 local.
        (utc(2026, 10, 26, 7, 0), "open"),
        (utc(2026, 10, 26, 6, 59), "closed"),
        (utc(2026, 10, 23, 6, 30), "open"),  # Friday before, CEST: 08:30 local
        # Lunch break.
        (utc(2026, 3, 30, 11, 30), "closed"),  # 13:30 local
    ],
)
def test_weekly_hours_follow_wall_clock_across_dst(moment: datetime, status: str) -> None:
    assert OFFICE.state_at(moment).status == status


def test_dst_night_sunday_range_in_the_skipped_hour() -> None:
    # 29 March 2026 02:00-03:00 local does not exist; 01:00 UTC is 03:00 CEST: open (02:30-03:30).
    assert OFFICE.state_at(utc(2026, 3, 29, 1, 0)).open
    assert not OFFICE.state_at(utc(2026, 3, 29, 1, 31)).open  # 03:31 CEST
    # 25 October: 02:30 local happens twice (CEST and CET); both are open.
    assert OFFICE.state_at(utc(2026, 10, 25, 0, 30)).open
    assert OFFICE.state_at(utc(2026, 10, 25, 1, 30)).open


def test_range_crossing_midnight_runs_into_the_next_day() -> None:
    saturday_late = datetime(2026, 3, 7, 23, 0, tzinfo=ROME)
    sunday_early = datetime(2026, 3, 8, 1, 59, tzinfo=ROME)
    assert OFFICE.state_at(saturday_late).open
    assert OFFICE.state_at(sunday_early).open
    assert not OFFICE.state_at(sunday_early + timedelta(minutes=1)).open


def test_range_crossing_midnight_stops_at_a_holiday() -> None:
    schedule = Schedule.from_mapping(
        {"timezone": "Europe/Rome", "open": {"daily": ["22:00-02:00"]}, "closed_dates": ["12-25"]}
    )
    assert schedule.state_at(datetime(2026, 12, 24, 23, 0, tzinfo=ROME)).status == "open"
    state = schedule.state_at(datetime(2026, 12, 25, 0, 30, tzinfo=ROME))
    assert state.status == "holiday" and not state.open
    # ... and the night after the holiday opens again at 22:00 and runs into the 26th.
    assert schedule.state_at(datetime(2026, 12, 26, 1, 0, tzinfo=ROME)).status == "closed"
    assert schedule.state_at(datetime(2026, 12, 26, 23, 0, tzinfo=ROME)).status == "open"


def test_yearly_and_dated_holidays() -> None:
    assert OFFICE.state_at(datetime(2027, 1, 1, 10, 0, tzinfo=ROME)).status == "holiday"
    assert OFFICE.state_at(datetime(2030, 1, 1, 10, 0, tzinfo=ROME)).status == "holiday"
    assert OFFICE.state_at(datetime(2026, 12, 25, 10, 0, tzinfo=ROME)).status == "holiday"
    assert OFFICE.state_at(datetime(2027, 12, 25, 10, 0, tzinfo=ROME)).status == "closed"


def test_special_hours_date_replaces_the_weekday() -> None:
    eve = datetime(2026, 12, 24, 0, 0, tzinfo=ROME)  # a Thursday
    assert OFFICE.state_at(eve.replace(hour=9)).status == "open"
    assert OFFICE.state_at(eve.replace(hour=12)).status == "holiday"
    assert OFFICE.state_at(eve.replace(hour=15)).status == "holiday"


def test_override_comes_first_and_expires() -> None:
    overrides = Overrides()
    monday_10 = datetime(2026, 3, 2, 10, 0, tzinfo=ROME)
    overrides.set("office", "closed", until=monday_10 + timedelta(hours=1), reason="flood")
    state = decide(OFFICE, monday_10, name="office", overrides=overrides)
    assert (state.status, state.open) == ("override", False)
    assert "office" in overrides.active(monday_10)
    later = decide(OFFICE, monday_10 + timedelta(hours=2), name="office", overrides=overrides)
    assert later.status == "open"
    assert overrides.active(monday_10) == {}
    overrides.set("office", "open")
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=ROME)
    assert decide(OFFICE, christmas, name="office", overrides=overrides).open
    assert overrides.clear("office")
    assert decide(OFFICE, christmas, name="office", overrides=overrides).status == "holiday"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        OFFICE.state_at(datetime(2026, 3, 2, 10, 0))
