"""Recording policies: the model, which policy applies to a leg, and the sampled decision."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from callcontrol.recording.policy import RecordingSettings, decide, policy_for

SETTINGS = RecordingSettings.model_validate({
    "policies": {
        "quality": {"record": "all", "retention_days": 90, "consent_prompt": "rec-notice"},
        "half": {"record": {"percent": 50}, "retention_days": 7},
        "asked": {"record": "on_demand"},
    },
    "default": "none",
    "flows": {"hotline": "half"},
    "queues": {"sales": "quality", "billing": "asked"},
})
CALL_IDS = [f"call-{i:04d}" for i in range(40)]


def test_step_override_beats_queue_beats_flow_beats_default() -> None:
    assert policy_for(SETTINGS, flow="hotline", queue="sales", step="asked") == "asked"
    assert policy_for(SETTINGS, flow="hotline", queue="sales") == "quality"
    assert policy_for(SETTINGS, flow="hotline", queue="support") == "half"  # queue names none
    assert policy_for(SETTINGS, flow="hotline") == "half"
    assert policy_for(SETTINGS, flow="other", queue="support") == "none"
    assert policy_for(SETTINGS, flow="hotline", step="none") == "none"  # a step may turn it off
    with pytest.raises(ValueError, match="unknown recording policy 'nope'"):
        policy_for(SETTINGS, step="nope")


def test_all_none_and_on_demand() -> None:
    assert decide(SETTINGS, "quality", "c1").record
    none = decide(SETTINGS, "none", "c1")
    assert (none.record, none.on_demand) == (False, False)
    asked = decide(SETTINGS, "asked", "c1")
    assert (asked.record, asked.on_demand) == (False, True)


def test_percent_50_over_40_calls_records_between_10_and_30_the_same_way_every_time() -> None:
    first = [decide(SETTINGS, "half", c).record for c in CALL_IDS]
    again = [decide(SETTINGS, "half", c).record for c in CALL_IDS]
    assert first == again
    assert 10 <= sum(first) <= 30, sum(first)
    every = RecordingSettings(policies={"p0": {"record": {"percent": 0}},  # type: ignore[dict-item]
                                        "p100": {"record": {"percent": 100}}})  # type: ignore[dict-item]
    assert not any(decide(every, "p0", c).record for c in CALL_IDS)
    assert all(decide(every, "p100", c).record for c in CALL_IDS)


def test_the_decision_is_logged_with_its_reason() -> None:
    with capture_logs() as logs:
        decision = decide(SETTINGS, "half", "call-0001")
    (entry,) = [e for e in logs if e["event"] == "recording_decision"]
    assert entry["call_id"] == "call-0001"
    assert entry["policy"] == "half"
    assert entry["record"] is decision.record
    assert entry["reason"].startswith("sampled: bucket ")


@pytest.mark.parametrize(("settings", "message"), [
    ({"queues": {"sales": "missing"}}, "queues.sales: unknown recording policy 'missing'"),
    ({"default": "x"}, "default: unknown recording policy 'x'"),
    ({"policies": {"none": {"record": "all"}}}, "'none' is built in"),
    ({"policies": {"p": {"record": {"percent": 101}}}}, "less than or equal to 100"),
    ({"policies": {"p": {"record": "sometimes"}}}, "'all', 'none' or 'on_demand'"),
    ({"policies": {"p": {"record": "all", "retention_days": 0}}}, "greater than or equal to 1"),
])
def test_bad_settings_are_refused_clearly(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RecordingSettings.model_validate(settings)
