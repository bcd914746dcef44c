"""The per-call recorder on the fake telephony: policies per leg, the row before the file, the
in-call codes, mutes that overlap, fail-closed mute, and the hidden raw file turned into the
recording (its figures on the row)."""

from __future__ import annotations

import array
import wave
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from callcontrol.config import RecordingSettings
from callcontrol.errors import PbxRefused
from callcontrol.flows.simulate import SimulatedCall
from callcontrol.recording.files import measure
from callcontrol.recording.paths import RecordingPaths
from callcontrol.recording.runtime import CallRecorder, seal
from callcontrol.store.records import RecordingFinished, RecordingStarted
from tests.unit.recording.conftest import Records
from tests.unit.recording.conftest import recorder as shared_recorder

SETTINGS = RecordingSettings.model_validate({
    "policies": {"kept": {"record": "all"}, "asked": {"record": "on_demand"}},
    "queues": {}, "flows": {"ivr": "kept"}, "default": "none",
})


def recorder(tmp_path: Path) -> tuple[CallRecorder, SimulatedCall, Records]:
    return shared_recorder(tmp_path, SETTINGS)


def names(call: SimulatedCall) -> list[str]:
    return [name for name, _ in call.fake.commands]


async def test_the_row_is_written_before_asterisk_is_asked_to_record(tmp_path: Path) -> None:
    rec, call, records = recorder(tmp_path)

    def check(name: str, args: dict[str, Any]) -> None:
        if name == "start_call_recording":
            assert isinstance(records[0], RecordingStarted)
            assert args["file"].endswith(f"/.{call.call_id}-1.raw") and args["stereo"]

    call.fake.on_command = check
    await rec.leg(flow="ivr")
    assert await rec.start()
    started = records[0]
    assert (started.n, started.policy, started.channels) == (1, "kept", 2)
    assert names(call) == ["start_call_recording"]
    assert not await rec.start()  # already recording


async def test_a_leg_whose_policy_does_not_record_stops_the_recording(tmp_path: Path) -> None:
    rec, call, _ = recorder(tmp_path)
    await rec.leg(flow="ivr")
    await rec.start()
    await rec.leg(queue="billing", step="none")
    assert "stop_call_recording" in names(call)
    assert not await rec.start()
    decisions = [d for kind, d in call.timeline if kind == "recording_decision"]
    assert [(d["policy"], d["record"]) for d in decisions] == [("kept", True), ("none", False)]


async def test_agent_codes_start_on_demand_and_toggle_mute(tmp_path: Path) -> None:
    rec, call, _ = recorder(tmp_path)
    await rec.leg(queue="q", step="asked")
    assert not await rec.start()  # on demand: not by policy
    for digit in "1*49":
        await rec.agent_digit(digit, "agent:a1")
    assert rec.active is not None
    for digit in "*47":
        await rec.agent_digit(digit, "agent:a1")
    await rec.mute("flow")
    for digit in "*47":
        await rec.agent_digit(digit, "agent:a1")  # the agent unmutes: the flow still mutes
    await rec.unmute("flow")
    mutes = [args["muted"] for name, args in call.fake.commands if name == "mute_call_recording"]
    assert mutes == [True, False]  # silence from the agent's mute to the flow's unmute
    kinds = [(k, d.get("by")) for k, d in call.timeline if k.startswith("recording_")]
    assert ("recording_started", "agent:a1") in kinds
    assert kinds[-4:] == [("recording_muted", "agent:a1"), ("recording_muted", "flow"),
                          ("recording_unmuted", "agent:a1"), ("recording_unmuted", "flow")]


async def test_a_mute_asterisk_refuses_stops_the_recording(tmp_path: Path) -> None:
    rec, call, _ = recorder(tmp_path)
    await rec.leg(flow="ivr")
    await rec.start()
    call.fake.fail["mute_call_recording"] = PbxRefused(0, "no MixMonitor")
    await rec.mute("flow", "sensitive gather")
    assert rec.active is None and "stop_call_recording" in names(call)


@pytest.mark.parametrize("stereo", [True, False])
def test_seal_turns_the_hidden_file_into_the_recording(tmp_path: Path, stereo: bool) -> None:
    paths = RecordingPaths(tmp_path)
    relative = "2026/12/03/c1-1.wav"
    paths.prepare(relative)
    partial = paths.partial(relative, "raw" if stereo else "wav")
    samples = array.array("h", range(-800, 800)) * 10  # 16000 samples
    if stereo:
        partial.write_bytes(samples.tobytes() + b"\x01")  # a torn last frame is left out
    else:

        with wave.open(str(partial), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(samples.tobytes())
    assert seal(paths, relative, partial, stereo, "complete") == "complete"
    assert not partial.exists()
    figures = measure(paths.resolve(relative))
    assert figures.complete and figures.channels == (2 if stereo else 1)
    assert figures.duration_s == (1.0 if stereo else 2.0)
    assert list(paths.files()) == [relative]


async def test_a_stopped_recording_is_finished_with_its_figures(tmp_path: Path) -> None:
    rec, _, records = recorder(tmp_path)
    await rec.leg(flow="ivr")
    await rec.start()
    assert rec.active is not None
    rec.active.partial.write_bytes(array.array("h", [1000, -1000] * 8000).tobytes())
    await rec.stop("call_end")
    await rec.service.close()
    finished = records[-1]
    assert isinstance(finished, RecordingFinished) and finished.status == "complete"
    assert finished.duration_s == 1.0 and finished.size_bytes == 44 + 32000


class Entry:
    """A timeline entry as the store returns it."""

    def __init__(self, kind: str, **data: Any) -> None:
        self.kind, self.data = kind, data
        self.at = datetime.now(UTC)


async def test_an_adopted_call_numbers_its_next_recording_after_the_stored_ones(
    tmp_path: Path,
) -> None:
    rec, call, records = recorder(tmp_path)
    rec.restore([
        Entry("recording_decision", policy="asked", record=False, on_demand=True,
              reason="on_demand"),
        Entry("recording_started", recording_id="r1", n=1, policy="asked", by="api:x"),
        Entry("recording_stopped", recording_id="r1", by="api:x"),
        Entry("recording_muted", by="agent:a1", reason="headset code"),
        Entry("recording_started", recording_id="r2", n=2, policy="asked", by="agent:a1"),
    ], flow="ivr")  # r2 was still running when the previous daemon died
    await rec.leg(queue="q", step="asked")
    assert [k for k, _ in call.timeline if k == "recording_decision"] == []  # decided before
    for digit in "*49":
        await rec.agent_digit(digit, "agent:a1")
    (started,) = [r for r in records if isinstance(r, RecordingStarted)]
    assert started.n == 3 and started.path.endswith(f"/{call.call_id}-3.wav")
    assert names(call) == ["stop_call_recording", "start_call_recording",
                           "mute_call_recording"]  # the orphan first; the agent's mute kept
    for digit in "*47":
        await rec.agent_digit(digit, "agent:a1")  # the restored mute toggles off
    assert call.fake.commands[-1] == ("mute_call_recording",
                                      {"channel_id": call.channel_id, "muted": False})
    await rec.stop("api:x")
    for digit in "*49":
        await rec.agent_digit(digit, "agent:a1")
    numbers = [r.n for r in records if isinstance(r, RecordingStarted)]
    assert numbers == [3, 4] and names(call).count("stop_call_recording") == 2


async def test_a_recording_stopped_before_the_restart_leaves_no_orphan_to_stop(
    tmp_path: Path,
) -> None:
    rec, call, records = recorder(tmp_path)
    rec.restore([Entry("recording_started", recording_id="r1", n=1),
                 Entry("recording_stopped", recording_id="r1")], flow=None)
    await rec.leg(flow="ivr")
    assert await rec.start()
    assert [r.n for r in records if isinstance(r, RecordingStarted)] == [2]
    assert names(call) == ["start_call_recording"]


async def test_a_voicemail_message_before_the_restart_takes_a_number_and_is_no_orphan(
    tmp_path: Path,
) -> None:
    rec, call, records = recorder(tmp_path)
    rec.restore([Entry("recording_started", step="vm", recording="v1", n=1, path="p",
                       policy="voicemail"),
                 Entry("recording_finished", step="vm", recording="v1", duration=2.0)],
                flow=None)  # the record step's entries: no MixMonitor to stop
    await rec.leg(flow="ivr")
    assert await rec.start()
    assert [r.n for r in records if isinstance(r, RecordingStarted)] == [2]
    assert names(call) == ["start_call_recording"]


async def test_a_leg_that_records_or_may_record_gets_a_bridge_that_hears_the_agents_codes(
    tmp_path: Path,
) -> None:
    rec, _, _ = recorder(tmp_path)
    assert rec.bridge_kind == "mixing"  # no leg yet
    await rec.leg(queue="q", step="none")
    assert rec.bridge_kind == "mixing"  # nothing to record: Asterisk may bridge natively
    await rec.leg(queue="q", step="asked")
    assert rec.bridge_kind == "mixing,dtmf_events"  # *49 must be heard before any recording
    await rec.leg(queue="q", step="kept")
    assert rec.bridge_kind == "mixing,dtmf_events"  # *47/*49 heard after a stop too
