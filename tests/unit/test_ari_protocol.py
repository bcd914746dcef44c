"""The pure ARI layer: events parsed from recorded-style JSON, request builders, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from ari_samples import channel_json, event

from callcontrol.ari import protocol as ari
from callcontrol.errors import Conflict, NotFound, PbxRefused, Unprocessable

STASIS_START = event(
    "StasisStart",
    args=["inbound", "a84b4c76e66710@pc33.example.org"],
    channel=channel_json(),
)


def test_stasis_start_is_typed_with_aware_times() -> None:
    ev = ari.parse_event(STASIS_START)
    assert isinstance(ev, ari.StasisStart)
    assert ev.args == ("inbound", "a84b4c76e66710@pc33.example.org")
    assert ev.timestamp == datetime(2024, 5, 6, 8, 15, 31, 250000, tzinfo=UTC)
    ch = ev.channel
    assert (ch.id, ch.state, ch.caller_number, ch.caller_name) == (
        "1715000000.42", "Ring", "+15551230001", "Alice",
    )
    assert (ch.context, ch.exten, ch.priority, ch.app_name) == (
        "callcontrol-inbound", "100", 1, "Stasis",
    )
    assert ch.created_at == datetime(2024, 5, 6, 10, 15, 30, 123000,
                                     tzinfo=timezone(timedelta(hours=2)))
    assert ev.replace_channel is None


def test_dtmf_state_hangup_destroyed() -> None:
    dtmf = ari.parse_event(event("ChannelDtmfReceived", digit="5", duration_ms=120,
                                 channel=channel_json(state="Up")))
    assert isinstance(dtmf, ari.ChannelDtmfReceived)
    assert (dtmf.digit, dtmf.duration_ms, dtmf.channel.state) == ("5", 120, "Up")

    state = ari.parse_event(event("ChannelStateChange", channel=channel_json(state="Up")))
    assert isinstance(state, ari.ChannelStateChange) and state.channel.state == "Up"

    req = ari.parse_event(event("ChannelHangupRequest", cause=16, soft=False,
                                channel=channel_json()))
    assert isinstance(req, ari.ChannelHangupRequest) and req.cause == 16 and not req.soft
    req_no_cause = ari.parse_event(event("ChannelHangupRequest", channel=channel_json()))
    assert isinstance(req_no_cause, ari.ChannelHangupRequest) and req_no_cause.cause is None

    gone = ari.parse_event(event("ChannelDestroyed", cause=17, cause_txt="User busy",
                                 channel=channel_json()))
    assert isinstance(gone, ari.ChannelDestroyed)
    assert (gone.cause, gone.cause_txt) == (17, "User busy")

    end = ari.parse_event(event("StasisEnd", channel=channel_json()))
    assert isinstance(end, ari.StasisEnd)


def test_playback_and_recording_targets() -> None:
    pb = ari.parse_event(event("PlaybackFinished", playback={
        "id": "pb-1", "media_uri": "sound:beep", "target_uri": "channel:1715000000.42",
        "language": "en", "state": "done"}))
    assert isinstance(pb, ari.PlaybackFinished)
    assert pb.playback.channel_id == "1715000000.42" and pb.playback.state == "done"

    on_bridge = ari.parse_event(event("PlaybackStarted", playback={
        "id": "pb-2", "media_uri": "sound:beep", "target_uri": "bridge:b-1", "state": "playing"}))
    assert isinstance(on_bridge, ari.PlaybackStarted) and on_bridge.playback.channel_id is None

    rec = ari.parse_event(event("RecordingFinished", recording={
        "name": "call-1", "format": "wav", "target_uri": "channel:1715000000.42",
        "state": "done", "duration": 12, "talking_duration": 9, "silence_duration": 3}))
    assert isinstance(rec, ari.RecordingFinished)
    assert rec.recording.channel_id == "1715000000.42"
    assert (rec.recording.duration, rec.recording.silence_duration) == (12.0, 3.0)

    failed = ari.parse_event(event("RecordingFailed", recording={
        "name": "call-2", "format": "wav", "target_uri": "channel:x", "state": "failed",
        "cause": "Could not open file"}))
    assert isinstance(failed, ari.RecordingFailed) and failed.recording.cause.startswith("Could")

    started = ari.parse_event(event("RecordingStarted", recording={
        "name": "call-3", "format": "wav", "target_uri": "channel:x", "state": "recording"}))
    assert isinstance(started, ari.RecordingStarted) and started.recording.duration is None


def test_dial_bridge_and_misc_events() -> None:
    dial = ari.parse_event(event("Dial", peer=channel_json("agent-leg"),
                                 caller=channel_json("caller-leg"), dialstatus="ANSWER",
                                 dialstring="agent1"))
    assert isinstance(dial, ari.Dial)
    assert (dial.peer.id, dial.caller and dial.caller.id, dial.dialstatus) == (
        "agent-leg", "caller-leg", "ANSWER")

    bridge = {"id": "b-1", "technology": "simple_bridge", "bridge_type": "mixing",
              "bridge_class": "stasis", "creator": "Stasis", "name": "",
              "channels": ["c1", "c2"], "creationtime": "2024-05-06T08:15:31.000+0000"}
    entered = ari.parse_event(event("ChannelEnteredBridge", bridge=bridge,
                                    channel=channel_json("c2")))
    assert isinstance(entered, ari.ChannelEnteredBridge)
    assert entered.bridge.channels == ("c1", "c2") and entered.channel is not None
    left = ari.parse_event(event("ChannelLeftBridge", bridge=bridge, channel=channel_json("c2")))
    assert isinstance(left, ari.ChannelLeftBridge)
    assert isinstance(ari.parse_event(event("BridgeDestroyed", bridge=bridge)),
                      ari.BridgeDestroyed)

    varset = ari.parse_event(event("ChannelVarset", variable="GLOBALX", value="1"))
    assert isinstance(varset, ari.ChannelVarset) and varset.channel is None
    assert isinstance(ari.parse_event(event("ApplicationReplaced")), ari.ApplicationReplaced)
    assert isinstance(ari.parse_event(event("ChannelConnectedLine", channel=channel_json())),
                      ari.ChannelConnectedLine)


def test_unknown_and_malformed_events_keep_the_raw_message() -> None:
    raw = event("ChannelTalkingStarted", channel=channel_json())
    ev = ari.parse_event(raw)
    assert isinstance(ev, ari.UnknownEvent)
    assert ev.type == "ChannelTalkingStarted" and ev.raw == raw

    broken = ari.parse_event(event("StasisStart", args=[]))  # no channel
    assert isinstance(broken, ari.UnknownEvent) and broken.type == "StasisStart"

    assert isinstance(ari.parse_message("not json"), ari.UnknownEvent)
    assert isinstance(ari.parse_message("[1, 2]"), ari.UnknownEvent)
    assert isinstance(ari.parse_message('{"type": "StasisStart", "application": "a", '
                                        '"timestamp": "bad", "args": [], '
                                        '"channel": {"id": "x"}}'), ari.StasisStart)


def test_bad_timestamps_become_none() -> None:
    assert ari.parse_time("garbage") is None
    assert ari.parse_time("2024-05-06T08:15:31") is None  # naive: refused
    assert ari.parse_time(None) is None


@pytest.mark.parametrize(
    ("request_", "method", "path", "params", "body"),
    [
        (ari.answer("c/1"), "POST", "/channels/c%2F1/answer", {}, None),
        (ari.hangup("c1", "busy"), "DELETE", "/channels/c1", {"reason": "busy"}, None),
        (ari.play("c1", ["sound:hello-world", "digits:42"], "pb-1", "fr"), "POST",
         "/channels/c1/play/pb-1", {"media": "sound:hello-world,digits:42", "lang": "fr"}, None),
        (ari.stop_playback("pb-1"), "DELETE", "/playbacks/pb-1", {}, None),
        (ari.record("c1", "rec-1", max_duration_s=30, max_silence_s=3, beep=True,
                    terminate_on="#"), "POST", "/channels/c1/record",
         {"name": "rec-1", "format": "wav", "maxDurationSeconds": "30",
          "maxSilenceSeconds": "3", "ifExists": "overwrite", "beep": "true",
          "terminateOn": "#"}, None),
        (ari.stop_recording("rec-1"), "POST", "/recordings/live/rec-1/stop", {}, None),
        (ari.mute_recording("rec-1"), "POST", "/recordings/live/rec-1/mute", {}, None),
        (ari.unmute_recording("rec-1"), "DELETE", "/recordings/live/rec-1/mute", {}, None),
        (ari.continue_in_dialplan("c1"), "POST", "/channels/c1/continue", {}, None),
        (ari.continue_in_dialplan("c1", "ctx", "s", 2), "POST", "/channels/c1/continue",
         {"context": "ctx", "extension": "s", "priority": "2"}, None),
        (ari.create_channel("PJSIP/agent1", "callcontrol", "leg-1", ["agent", "a1"],
                            variables={"CALLERID(num)": "100"}),
         "POST", "/channels/create",
         {"endpoint": "PJSIP/agent1", "app": "callcontrol", "appArgs": "agent,a1",
          "channelId": "leg-1"}, {"variables": {"CALLERID(num)": "100"}}),
        (ari.dial("leg-1", 15, "c1"), "POST", "/channels/leg-1/dial",
         {"timeout": "15", "caller": "c1"}, None),
        (ari.originate("Local/s@ctx", "o-1", app="callcontrol", app_args=["test"],
                       caller_id="100", timeout_s=10), "POST", "/channels/o-1",
         {"endpoint": "Local/s@ctx", "app": "callcontrol", "appArgs": "test",
          "callerId": "100", "timeout": "10"}, None),
        (ari.ring("c1"), "POST", "/channels/c1/ring", {}, None),
        (ari.start_moh("c1", "default"), "POST", "/channels/c1/moh", {"mohClass": "default"},
         None),
        (ari.stop_moh("c1"), "DELETE", "/channels/c1/moh", {}, None),
        (ari.create_bridge("b-1"), "POST", "/bridges/b-1", {"type": "mixing"}, None),
        (ari.add_to_bridge("b-1", "c1"), "POST", "/bridges/b-1/addChannel",
         {"channel": "c1"}, None),
        (ari.remove_from_bridge("b-1", "c1"), "POST", "/bridges/b-1/removeChannel",
         {"channel": "c1"}, None),
        (ari.destroy_bridge("b-1"), "DELETE", "/bridges/b-1", {}, None),
        (ari.get_variable("c1", "PJSIP_HEADER(read,Call-ID)"), "GET", "/channels/c1/variable",
         {"variable": "PJSIP_HEADER(read,Call-ID)"}, None),
        (ari.list_channels(), "GET", "/channels", {}, None),
        (ari.list_bridges(), "GET", "/bridges", {}, None),
        (ari.get_application("callcontrol"), "GET", "/applications/callcontrol", {}, None),
        (ari.snoop("c1", "s-1", "callcontrol", spy="both"), "POST", "/channels/c1/snoop/s-1",
         {"app": "callcontrol", "spy": "both", "whisper": "none"}, None),
    ],
)
def test_request_builders(
    request_: ari.Request, method: str, path: str, params: dict[str, str], body: Any
) -> None:
    assert (request_.method, request_.path, dict(request_.params), request_.json) == (
        method, path, params, body,
    )


def test_play_needs_media() -> None:
    with pytest.raises(ValueError):
        ari.play("c1", [], "pb")


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, NotFound), (409, Conflict), (400, Unprocessable), (422, Unprocessable),
     (403, PbxRefused), (500, PbxRefused), (503, PbxRefused)],
)
def test_error_mapping(status: int, kind: type[PbxRefused]) -> None:
    err = ari.error_for_status(status, {"message": "Channel not found"})
    assert type(err) is kind
    assert err.status == status and err.message == "Channel not found"


def test_error_mapping_with_text_body() -> None:
    assert ari.error_for_status(500, "Internal Server Error").message == "Internal Server Error"
    assert ari.error_for_status(500, None).message == ""
