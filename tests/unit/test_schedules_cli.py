from datetime import UTC, datetime

import pytest

from callcontrol.api.schedules_api import parse_override
from callcontrol.errors import ApiError
from callcontrol.schedules_cli import parse_until


def test_until_hh_mm_is_the_next_such_time_in_the_site_zone() -> None:
    now = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 18:00 in Rome
    later_today = parse_until("19:30", "Europe/Rome", now)
    assert later_today.astimezone(UTC) == datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
    tomorrow = parse_until("08:00", "Europe/Rome", now)
    assert tomorrow.astimezone(UTC) == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def test_until_iso_keeps_its_offset() -> None:
    moment = parse_until("2026-12-24T12:00:00Z", "Europe/Rome")
    assert moment == datetime(2026, 12, 24, 12, 0, tzinfo=UTC)


def test_override_body_validation() -> None:
    assert parse_override({"state": "closed"}) == ("closed", None, "")
    state, until, reason = parse_override(  # until lies in the future (checked)
        {"state": "open", "until": "2099-12-24T12:00:00Z", "reason": "storm"}
    )
    assert (state, until, reason) == ("open", datetime(2099, 12, 24, 12, tzinfo=UTC), "storm")
    for bad in ({"state": "maybe"}, {"state": "open", "until": "tomorrow"},
                {"state": "open", "until": "2026-12-24T12:00:00"}, {"state": "open", "until": 5}):
        with pytest.raises(ApiError) as err:
            parse_override(bad)
        assert err.value.error_id == "invalid_body"
