"""The flow engine against a scripted call (no Asterisk): every step kind and its semantics.

Scripts are strict (``auto=False``): every prompt end (P), silence (T), key, recording end
(R/E) and hang-up (H) is written, so a test fails if the engine waits where it should not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from callcontrol.calls.context import CallerHungUp, QueueResult
from callcontrol.config import RecordingSettings
from callcontrol.errors import Conflict, PbxRefused, TelephonyError
from callcontrol.flows.engine import FlowEngine, FlowResult, FlowServices, mask_digits
from callcontrol.flows.expressions import Sandbox
from callcontrol.flows.loader import LoadedFlow, load_flow_text
from callcontrol.flows.prompts import PromptResolver
from callcontrol.flows.simulate import FixtureHttp, HttpFixture, SimulatedCall
from callcontrol.recording.paths import RecordingPaths
from callcontrol.recording.runtime import CallRecorder, RecordingService
from callcontrol.store.records import RecordingFinished, RecordingMarked, RecordingStarted
from callcontrol.telephony import DtmfReceived, PlaybackFinished
from tests.unit.recording.conftest import write_wav

MONDAY_10_ROME = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SUNDAY_10_ROME = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def flows(tmp_path: Path, **texts: str) -> dict[str, LoadedFlow]:
    out = {}
    for name, text in texts.items():
        out[name] = load_flow_text(f"flow: {name}\n{text}", tmp_path / f"{name}.yaml")
    return out


async def run(
    tmp_path: Path,
    text: str,
    script: str,
    *,
    others: Mapping[str, str] | None = None,
    http: FixtureHttp | None = None,
    now: datetime = MONDAY_10_ROME,
    queue_exits: tuple[str, ...] = (),
    dial_results: tuple[str, ...] = (),
    recording: Path | None = None,
    secrets: Mapping[str, str] | None = None,
    fail: Mapping[str, TelephonyError] | None = None,
) -> tuple[FlowResult, SimulatedCall]:
    """Run ``main``; ``recording``: a recordings root, the flow recorded by policy there;
    ``fail``: PBX commands that raise."""
    snapshot = flows(tmp_path, main=text, **(others or {}))
    call = SimulatedCall(
        script, auto=False, now=now, queue_exits=queue_exits, dial_results=dial_results
    )
    call.fake.fail.update(fail or {})
    services = FlowServices(
        Sandbox(secrets),
        PromptResolver(tmp_path / "prompts"),
        http or FixtureHttp(),
    )
    if recording is not None:
        settings = RecordingSettings(policies={"q": {"record": "all"}}, flows={"main": "q"})
        service = RecordingService(settings, RecordingPaths(recording), call.fake, Records(),
                                   tmp_path / "spool")
        call.recordings = service.for_call(call)
    result = await FlowEngine(call, snapshot, services).run("main")
    return result, call


class Records(list[Any]):
    """An interaction log that keeps what is appended."""

    def append(self, record: Any) -> None:
        super().append(record)


def commands(call: SimulatedCall, name: str) -> list[dict[str, Any]]:
    return [args for command, args in call.fake.commands if command == name]


END = """
  end:
    hangup: {}
"""

PLAY_THEN_MENU = (
    """start: welcome
steps:
  welcome:
    play: [welcome]
    next: menu
  menu:
    menu:
      prompt: main-menu
      options: {"1": one, "2": two}
      timeout: [5s, 7s]
      attempts: 3
      invalid_prompt: invalid-option
      timeout_prompt: no-input
      save_as: choice
    failed: end
  one:
    play: [one]
    next: end
  two:
    play: [two]
    next: end
"""
    + END
)


async def test_type_ahead_during_a_non_barge_in_prompt_reaches_the_menu(tmp_path: Path) -> None:
    result, call = await run(tmp_path, PLAY_THEN_MENU, "1P P")
    assert result.path == ("welcome", "menu", "one", "end")
    assert result.variables["choice"] == "1"
    assert commands(call, "stop_playback") == []  # welcome played to its end
    played = [args["media"] for args in commands(call, "play")]
    assert played == [["sound:welcome"], ["sound:one"]]  # the menu prompt was barged over
    assert call.entries("prompt_skipped")[0]["step"] == "menu"
    assert result.outcome == "completed"
    assert commands(call, "hangup") == [{"channel_id": "sim-chan", "reason": "normal"}]


async def test_barge_in_stops_the_menu_prompt_and_the_digit_counts(tmp_path: Path) -> None:
    result, call = await run(tmp_path, PLAY_THEN_MENU, "P 2 P")
    assert result.path == ("welcome", "menu", "two", "end")
    assert commands(call, "stop_playback") == [{"playback_id": "pb-sim-chan-menu-2"}]
    assert call.entries("barge_in") == [{"step": "menu", "digit": "2"}]


async def test_playback_ids_derive_from_channel_step_and_counter(tmp_path: Path) -> None:
    _, call = await run(tmp_path, PLAY_THEN_MENU, "P P 1 P")
    ids = [args["playback_id"] for args in commands(call, "play")]
    assert ids == ["pb-sim-chan-welcome-1", "pb-sim-chan-menu-2", "pb-sim-chan-one-3"]


async def test_menu_attempts_invalid_then_timeouts_then_failed(tmp_path: Path) -> None:
    result, call = await run(tmp_path, PLAY_THEN_MENU, "P P9 PT PT")
    assert result.path == ("welcome", "menu", "end")
    media = [args["media"] for args in commands(call, "play")]
    assert media[1:] == [
        ["sound:main-menu"],
        ["sound:invalid-option", "sound:main-menu"],
        ["sound:no-input", "sound:main-menu"],
    ]  # no retry prompt after the last attempt
    assert call.entries("invalid") == [{"step": "menu", "attempt": 1, "digits": "9"}]
    assert [e["attempt"] for e in call.entries("timeout")] == [2, 3]
    assert call.entries("exit")[-2] == {"step": "menu", "exit": "failed", "to": "end"}
    # timeout per attempt: 5s, then 7s (the last one repeats).
    waits = [round(w, 1) for w in call.waits if w is not None]
    assert [w for w in waits if w in (5.0, 7.0)] == [5.0, 7.0, 7.0]


async def test_menu_repeat_does_not_use_an_attempt_and_global_keys_work(tmp_path: Path) -> None:
    text = (
        """start: menu
global_keys: {"0": operator}
steps:
  menu:
    menu:
      prompt: main-menu
      options: {"9": repeat, "1": end}
      attempts: 1
    failed: end
  operator:
    play: [operator]
    next: end
"""
        + END
    )
    result, call = await run(tmp_path, text, "P9 P9 P1")
    assert result.path == ("menu", "end")
    assert len(commands(call, "play")) == 3
    result, _ = await run(tmp_path, text, "P0 P")
    assert result.path == ("menu", "operator", "end")


GATHER = (
    """start: account
steps:
  account:
    gather:
      prompt: enter-account
      min_digits: 4
      max_digits: 6
      finish_on: "#"
      timeout: 8s
      inter_digit_timeout: 3s
      attempts: 2
      validate: "^[0-9]+$"
      invalid_prompt: invalid-option
      save_as: account
    next: after
    failed: failed
  after:
    menu:
      prompt: main-menu
      options: {"1": end}
      attempts: 1
    failed: end
  failed:
    play: [sorry]
    next: end
"""
    + END
)


async def test_gather_with_finish_key(tmp_path: Path) -> None:
    result, call = await run(tmp_path, GATHER, "P 0123# P1")
    assert result.variables["account"] == "0123"
    assert call.entries("digits")[0] == {"step": "account", "attempt": 1, "digits": "0123"}
    assert result.path == ("account", "after", "end")


async def test_gather_timeout_from_prompt_end_then_inter_digit(tmp_path: Path) -> None:
    result, call = await run(tmp_path, GATHER, "P 12345T P1")
    assert result.variables["account"] == "12345"
    # after the prompt's end: the first digit, then between digits
    gather_waits = [round(w or 0, 1) for w in call.waits[1:7]]
    assert gather_waits == [8.0, 3.0, 3.0, 3.0, 3.0, 3.0]


async def test_gather_full_entry_swallows_its_terminator(tmp_path: Path) -> None:
    result, _ = await run(tmp_path, GATHER, "P 123456# P1")
    assert result.variables["account"] == "123456"
    assert result.path == ("account", "after", "end")  # '#' did not reach the menu


async def test_gather_invalid_then_timeout_fails(tmp_path: Path) -> None:
    result, call = await run(tmp_path, GATHER, "P 12# P T P")
    assert result.path == ("account", "failed", "end")
    assert call.entries("invalid") == [{"step": "account", "attempt": 1, "digits": "12"}]
    assert call.entries("timeout") == [{"step": "account", "attempt": 2}]
    assert "account" not in result.variables


async def test_sensitive_gather_is_masked_and_mutes_the_recording(tmp_path: Path) -> None:
    text = GATHER.replace("save_as: account", "save_as: account\n      sensitive: true")
    result, call = await run(tmp_path, text, "7 321# P1", recording=tmp_path / "rec")
    assert result.variables["account"] == "****"
    assert call.entries("barge_in") == [{"step": "account", "digit": "*"}]
    assert call.entries("digits")[0]["digits"] == "****"
    assert "7321" not in repr(call.timeline) and "'7'" not in repr(call.timeline)
    names = [c for c, _ in call.fake.commands]
    mutes = commands(call, "mute_call_recording")
    assert [m["muted"] for m in mutes] == [True, False]
    first_mute = names.index("mute_call_recording")
    assert names.index("start_call_recording") < first_mute < names.index("play")
    assert names.index("play") < len(names) - 1 - names[::-1].index("mute_call_recording")
    assert [e["by"] for e in call.entries("recording_muted")] == ["flow"]
    assert [e["by"] for e in call.entries("recording_unmuted")] == ["flow"]
    assert mask_digits("4111111111111111") == "************1111"


async def test_a_recorded_call_gets_silence_while_it_waits_for_digits(tmp_path: Path) -> None:
    # nothing would flow while the caller types (DTMF events replace its audio): the
    # recording would lose that time, so the flow sends silence between prompt and answer
    _, recorded = await run(tmp_path, GATHER, "P 123456# P1", recording=tmp_path / "rec")
    names = [c for c, _ in recorded.fake.commands]
    start, stop = names.index("start_silence"), names.index("stop_silence")
    assert names.index("play") < start < stop
    assert names.count("start_silence") == names.count("stop_silence")  # one per wait
    assert {c["channel_id"] for c in commands(recorded, "start_silence")} == {
        recorded.channel_id}
    _, unrecorded = await run(tmp_path / "plain", GATHER, "P 123456# P1")
    assert not commands(unrecorded, "start_silence")


async def test_digits_typed_beyond_a_sensitive_entry_are_dropped_unseen(tmp_path: Path) -> None:
    text = GATHER.replace("save_as: account", "save_as: account\n      sensitive: true\n"
                          "      barge_in: false")
    result, call = await run(tmp_path, text, "74321998 P P1")
    assert result.variables["account"] == "******"
    assert call.entries("digits_discarded") == [{"step": "account", "count": 2}]
    assert call.entries("unused_digits") == []
    assert "743219" not in repr(call.timeline) and "98" not in repr(call.timeline)


async def test_set_and_branch_with_missing_values(tmp_path: Path) -> None:
    text = (
        """start: prepare
variables: {tier: standard}
steps:
  prepare:
    set:
      label: "{{ tier | upper }}-{{ call.extension }}"
      count: 3
      flags: [a, b]
    next: decide
  decide:
    branch:
      - if: "crm.tier == 'vip'"
        goto: vip
      - if: "count > 2 and label.startswith('STANDARD')"
        goto: many
    else: end
  vip:
    hangup: {}
  many:
    hangup: {cause: busy}
"""
        + END
    )
    result, call = await run(tmp_path, text, "")
    assert result.variables["label"] == "STANDARD-100"
    assert result.variables["count"] == 3 and result.variables["flags"] == ["a", "b"]
    assert result.path == ("prepare", "decide", "many")
    assert call.entries("missing_value") == [{"step": "decide", "names": ["crm"]}]
    assert commands(call, "hangup") == [{"channel_id": "sim-chan", "reason": "busy"}]


HOURS = """start: check
schedules:
  office:
    timezone: Europe/Rome
    open: {mon-fri: ["08:00-20:00"]}
    closed_dates: ["03-03"]
steps:
  check:
    hours: office
    open: open
    closed: closed
    holiday: holiday
  open:
    hangup: {}
  closed:
    hangup: {}
  holiday:
    hangup: {}
"""


@pytest.mark.parametrize(
    ("now", "path"),
    [
        (MONDAY_10_ROME, ("check", "open")),
        (SUNDAY_10_ROME, ("check", "closed")),
        (datetime(2026, 3, 3, 9, 0, tzinfo=UTC), ("check", "holiday")),
    ],
)
async def test_hours_use_the_call_clock(
    tmp_path: Path, now: datetime, path: tuple[str, ...]
) -> None:
    result, call = await run(tmp_path, HOURS, "", now=now)
    assert result.path == path
    assert call.entries("hours")[0]["schedule"] == "office"


async def test_http_success_saves_and_sets_status(tmp_path: Path) -> None:
    text = (
        """start: lookup
variables: {account: "a b", base: "http://crm.test/customers"}
steps:
  lookup:
    http:
      url: "{{ base | safe }}/{{ account }}?key={{ secrets.KEY }}"
      headers: {Authorization: "Bearer {{ secrets.KEY }}"}
      save_as: customer
    next: end
    error: end
"""
        + END
    )
    http = FixtureHttp([HttpFixture(url="crm.test/customers/a%20b", json={"tier": "vip"})])
    result, call = await run(tmp_path, text, "", http=http, secrets={"KEY": "topsecret"})
    assert result.variables["customer"] == {"tier": "vip"}
    assert result.variables["http"] == {"status": 200, "ms": 5}
    assert http.requests[0].headers == {"Authorization": "Bearer topsecret"}
    entry = call.entries("http")[0]
    assert entry["url"] == "http://crm.test/customers/a%20b?key=***" and entry["ok"] is True
    assert "topsecret" not in repr(call.timeline) and "topsecret" not in repr(result)


@pytest.mark.parametrize(
    "fixture",
    [
        HttpFixture(url="crm.test", status=500),
        HttpFixture(url="crm.test", timeout=True),
        HttpFixture(url="crm.test", connection_error=True),
        HttpFixture(url="crm.test", status=200, json=None),
    ],
)
async def test_http_failures_take_the_error_exit(tmp_path: Path, fixture: HttpFixture) -> None:
    text = (
        """start: lookup
steps:
  lookup:
    http: {url: "http://crm.test/x", timeout: 2s, save_as: customer}
    next: end
    error: fallback
  fallback:
    hangup: {}
"""
        + END
    )
    result, call = await run(tmp_path, text, "", http=FixtureHttp([fixture]))
    assert result.path == ("lookup", "fallback")
    assert "customer" not in result.variables
    assert result.variables["http"]["status"] == (
        fixture.status if not (fixture.timeout or fixture.connection_error) else None
    )
    assert call.entries("step_error")[0]["step"] == "lookup"


QUEUE = (
    """start: hold
on_hangup: notify
steps:
  hold:
    play: [hold-on]
    next: wait
  wait:
    queue:
      name: billing
      priority: 5
      keys: {"1": left}
      callback: true
    timeout: timed_out
    no_agents: nobody
  left:
    hangup: {}
  timed_out:
    hangup: {}
  nobody:
    hangup: {}
  notify:
    set: {notified: "yes"}
    next: end
"""
    + END
)


@pytest.mark.parametrize(
    ("exit_", "path", "outcome"),
    [
        ("timeout", ("hold", "wait", "timed_out"), "completed"),
        ("no_agents", ("hold", "wait", "nobody"), "completed"),
        ("full", ("hold", "wait", "timed_out"), "completed"),
        ("key:1", ("hold", "wait", "left"), "completed"),
        ("callback", ("hold", "wait"), "callback_requested"),
        ("after", ("hold", "wait"), "completed"),
        ("hangup", ("hold", "wait", "notify"), "abandoned"),
    ],
)
async def test_queue_exits(tmp_path: Path, exit_: str, path: tuple[str, ...], outcome: str) -> None:
    result, call = await run(tmp_path, QUEUE, "7P", queue_exits=(exit_,))
    assert result.path == path
    assert result.outcome == outcome
    request = call.queue_requests[0]
    assert (request.name, request.priority, request.callback) == ("billing", 5, True)
    assert dict(request.keys) == {"1": "left"}
    # the key pressed during the prompt was handed back to the queue layer, not dropped
    assert call.handed_back == [
        [DtmfReceived(channel_id="sim-chan", digit="7", at=call.handed_back[0][0].at)]
    ]
    if exit_ == "after":
        assert commands(call, "hangup")  # no `after` exit: the caller is hung up
    if exit_ == "hangup":
        assert result.variables["notified"] == "yes"


async def test_dial_results(tmp_path: Path) -> None:
    text = (
        """start: call
variables: {ext: "+390612345678"}
steps:
  call:
    dial: {to: "number:{{ ext }}", timeout: 20s}
    next: end
    busy: busy
    no_answer: end
    failed: end
  busy:
    hangup: {cause: busy}
"""
        + END
    )
    result, call = await run(tmp_path, text, "", dial_results=("busy",))
    assert result.path == ("call", "busy")
    assert call.dial_requests[0].to == "number:+390612345678"
    assert call.dial_requests[0].timeout == 20.0


RECORD = """start: vm
steps:
  vm:
    record: {prompt: leave-message, max_duration: 60s, save_as: message, finish_on: "#"}
    next: bye
    empty: nothing
  bye:
    hangup: {}
  nothing:
    hangup: {}
"""


async def test_record_saves_a_message(tmp_path: Path) -> None:
    result, call = await run(tmp_path, RECORD, "P R")
    assert result.path == ("vm", "bye")
    assert result.outcome == "voicemail"
    assert result.variables["message"] == "vm-sim-call-vm-1"
    assert commands(call, "record")[0] | {"channel_id": "x"} == {
        "channel_id": "x",
        "name": "vm-sim-call-vm-1",
        "fmt": "wav",
        "max_duration_s": 60,
        "max_silence_s": 0,
        "beep": True,
        "terminate_on": "#",
    }


async def test_record_empty_and_hangup_during_recording(tmp_path: Path) -> None:
    result, _ = await run(tmp_path, RECORD, "P E")
    assert (result.path, result.outcome) == (("vm", "nothing"), "completed")
    result, _ = await run(tmp_path, RECORD, "P H")
    assert (result.outcome, result.variables["message"]) == ("voicemail", "vm-sim-call-vm-1")


async def test_a_message_of_a_recorded_call_is_its_next_recording(tmp_path: Path) -> None:
    result, call = await run(tmp_path, RECORD, "P R", recording=tmp_path / "rec")
    recorder = call.recordings
    assert isinstance(recorder, CallRecorder)
    records = recorder.service.sink
    assert isinstance(records, Records)
    started = [r for r in records if isinstance(r, RecordingStarted)]
    assert [(r.n, r.policy, r.channels) for r in started] == [(1, "q", 2), (2, "voicemail", 1)]
    message = started[1]
    assert commands(call, "record")[0]["name"] == "vm-sim-call-2"
    assert result.variables["message"] == message.recording_id
    (entry,) = [e for e in call.entries("recording_started") if "step" in e]
    assert entry == {"step": "vm", "recording": message.recording_id, "n": 2,
                     "path": message.path, "policy": "voicemail"}
    write_wav(tmp_path / "spool" / "vm-sim-call-2.wav", 1.0, channels=1)  # Asterisk's file
    await recorder.service.close()
    (finished,) = [r for r in records if isinstance(r, RecordingFinished)]
    assert (finished.recording_id, finished.status) == (message.recording_id, "complete")
    assert (tmp_path / "rec" / message.path).is_file()


async def test_a_message_cut_by_a_hang_up_or_refused_is_still_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("callcontrol.recording.runtime.CLOSE_WAIT_S", 0.2)
    result, call = await run(tmp_path, RECORD, "P H", recording=tmp_path / "rec")
    assert isinstance(call.recordings, CallRecorder)
    await call.recordings.service.close()
    assert result.outcome == "voicemail"
    assert [type(r).__name__ for r in call.recordings.service.sink][-1] == "RecordingMarked"

    result, call = await run(tmp_path / "refused", RECORD, "P P", recording=tmp_path / "rec2",
                             fail={"record": PbxRefused(0, "no spool")})
    assert isinstance(call.recordings, CallRecorder)
    await call.recordings.service.close()
    assert call.entries("step_error")[0]["step"] == "vm"
    marked = call.recordings.service.sink[-1]
    assert isinstance(marked, RecordingMarked) and marked.status == "missing"


async def test_split_is_decided_by_the_call_id(tmp_path: Path) -> None:
    text = """start: ab
steps:
  ab:
    split: {a: 50, b: 50}
  a:
    hangup: {}
  b:
    hangup: {}
"""
    first, _ = await run(tmp_path, text, "")
    second, _ = await run(tmp_path, text, "")
    assert first.path == second.path and first.path[1] in ("a", "b")


async def test_goto_flow_carries_variables_and_logs_versions(tmp_path: Path) -> None:
    text = """start: go
variables: {who: caller}
steps:
  go:
    goto_flow: {flow: other, step: second}
"""
    other = """start: first
variables: {who: overwritten, extra: 1}
steps:
  first:
    hangup: {}
  second:
    set: {greeting: "hi {{ who }}"}
    next: done
  done:
    hangup: {}
"""
    result, call = await run(tmp_path, text, "", others={"other": other})
    assert result.path == ("go", "other:second", "other:done")
    assert result.variables == {"who": "caller", "extra": 1, "greeting": "hi caller"}
    started = call.entries("flow_started")
    assert [e["flow"] for e in started] == ["main", "other"]
    assert all(len(e["version"]) == 12 for e in started)
    assert call.updates[0]["flow"] == "main"  # the call row keeps the entry flow


ERRORS = (
    """start: first
on_error: oops
steps:
  first:
    set: {x: "{{ 1 / 0 }}"}
    next: end
    error: local
  local:
    set: {y: "{{ nope( ) }}"}
    next: end
  oops:
    play: [sorry]
    next: end
"""
    + END
)


async def test_error_exit_then_on_error(tmp_path: Path) -> None:
    result, call = await run(tmp_path, ERRORS, "P")
    assert result.path == ("first", "local", "oops", "end")
    assert [e["exit"] for e in call.entries("exit")[:2]] == ["error", "on_error"]
    assert result.outcome == "completed"


async def test_without_error_handling_the_caller_hears_an_apology(tmp_path: Path) -> None:
    text = ERRORS.replace("on_error: oops\n", "").replace("    error: local\n", "")
    result, call = await run(tmp_path, text, "P")
    assert result.outcome == "failed"
    assert commands(call, "play")[-1]["media"] == ["sound:im-sorry", "sound:vm-goodbye"]


async def test_a_prompt_asterisk_cannot_play_is_an_error(tmp_path: Path) -> None:
    text = (
        """start: hello
steps:
  hello:
    play: [missing-sound]
    next: end
    error: end
"""
        + END
    )
    snapshot = flows(tmp_path, main=text)
    call = SimulatedCall("", auto=False)
    call.push_back(
        PlaybackFinished(channel_id="sim-chan", playback_id="pb-sim-chan-hello-1", state="failed")
    )
    services = FlowServices(Sandbox(), PromptResolver(tmp_path), FixtureHttp())
    result = await FlowEngine(call, snapshot, services).run("main")
    assert result.path == ("hello", "end")
    assert "could not play" in call.entries("step_error")[0]["error"]


async def test_a_pbx_error_takes_the_error_exit(tmp_path: Path) -> None:
    text = (
        """start: hello
steps:
  hello:
    play: [hello]
    next: end
    error: end
"""
        + END
    )
    snapshot = flows(tmp_path, main=text)
    call = SimulatedCall("", auto=False)
    call.fake.fail["play"] = Conflict(409, "channel not in Stasis")
    services = FlowServices(Sandbox(), PromptResolver(tmp_path), FixtureHttp())
    result = await FlowEngine(call, snapshot, services).run("main")
    assert result.path[:2] == ("hello", "end")


async def test_on_hangup_runs_only_set_http_branch(tmp_path: Path) -> None:
    text = (
        """start: menu
on_hangup: a
steps:
  menu:
    menu: {prompt: main-menu, options: {"1": end}}
    failed: end
  a:
    set: {gone: "yes"}
    next: b
  b:
    branch:
      - if: "gone == 'yes'"
        goto: c
    else: end
  c:
    play: [never]
    next: end
"""
        + END
    )
    result, call = await run(tmp_path, text, "P H")
    assert result.path == ("menu", "a", "b")
    assert result.variables["gone"] == "yes"
    assert call.entries("on_hangup_stopped") == [{"step": "c", "step_kind": "play"}]
    assert [args["media"] for args in commands(call, "play")] == [["sound:main-menu"]]


async def test_timeline_names_steps_exits_tags_and_flow_version(tmp_path: Path) -> None:
    text = (
        """start: hello
steps:
  hello:
    play: [hello]
    tags: [inbound, demo]
    next: end
"""
        + END
    )
    result, call = await run(tmp_path, text, "P")
    assert call.updates[0] == {
        "flow": "main",
        "flow_version": call.entries("flow_started")[0]["version"],
    }
    assert {"tags": ["inbound", "demo"]} in call.updates
    assert call.kinds()[:4] == ["flow_started", "step", "exit", "step"]
    assert call.entries("flow_ended")[0]["outcome"] == result.outcome


async def test_queue_layer_may_report_the_hangup_by_raising(tmp_path: Path) -> None:
    snapshot = flows(tmp_path, main=QUEUE)
    call = SimulatedCall("P", auto=False)

    async def hang_up(request: Any) -> QueueResult:
        raise CallerHungUp()

    call.enter_queue = hang_up  # type: ignore[method-assign]
    services = FlowServices(Sandbox(), PromptResolver(tmp_path), FixtureHttp())
    result = await FlowEngine(call, snapshot, services).run("main")
    assert result.outcome == "completed"  # hung up, but the queue layer did not say abandoned
    assert result.variables["notified"] == "yes"
