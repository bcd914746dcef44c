"""ARI events translated to domain events, and the port's commands as ARI requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ari_samples import channel_json, event

from callcontrol import telephony as tel
from callcontrol.ari import protocol as ari
from callcontrol.ari.adapter import AriTelephony, translate
from callcontrol.clock import utcnow
from callcontrol.errors import Conflict, NotFound, PbxRefused

AT = datetime(2024, 5, 6, 8, 15, 31, 250000, tzinfo=UTC)


def one(raw: dict[str, Any]) -> tel.TelephonyEvent:
    events = translate(ari.parse_event(raw))
    assert len(events) == 1, events
    return events[0]


def test_inbound_stasis_start_carries_the_sip_call_id() -> None:
    ev = one(event("StasisStart", args=["inbound", "abc@host"],
                   channel=channel_json("c1", protocol_id="")))
    assert ev == tel.ChannelEntered(
        channel_id="c1", at=AT, args=("inbound", "abc@host"), caller_number="+15551230001",
        caller_name="Alice", extension="100", state="Ring", sip_call_id="abc@host",
    )


def test_stasis_start_without_call_id_arg() -> None:
    empty = one(event("StasisStart", args=["inbound", ""],
                      channel=channel_json("c1", protocol_id="")))
    assert isinstance(empty, tel.ChannelEntered) and empty.sip_call_id is None
    agent = one(event("StasisStart", args=["agent", "a1"],
                      channel=channel_json("c2", protocol_id="")))
    assert isinstance(agent, tel.ChannelEntered) and agent.sip_call_id is None
    # Without the dialplan argument, the driver's protocol id is the Call-ID.
    fallback = one(event("StasisStart", args=[], channel=channel_json("c3")))
    assert isinstance(fallback, tel.ChannelEntered)
    assert fallback.sip_call_id == "a84b4c76e66710@pc33.example.org"
    replaced = one(event("StasisStart", args=[], channel=channel_json("c4"),
                         replace_channel=channel_json("old")))
    assert isinstance(replaced, tel.ChannelEntered) and replaced.replaced


def test_channel_events() -> None:
    assert one(event("ChannelDtmfReceived", digit="#", duration_ms=90,
                     channel=channel_json("c1"))) == tel.DtmfReceived(
        channel_id="c1", at=AT, digit="#", duration_ms=90)
    assert one(event("ChannelStateChange", channel=channel_json("c1", state="Up"))) == \
        tel.ChannelStateChanged(channel_id="c1", at=AT, state="Up")
    assert one(event("ChannelHangupRequest", channel=channel_json("c1"))) == \
        tel.ChannelHungUp(channel_id="c1", at=AT, cause=16)
    assert one(event("ChannelHangupRequest", cause=21, channel=channel_json("c1"))) == \
        tel.ChannelHungUp(channel_id="c1", at=AT, cause=21)
    assert one(event("ChannelDestroyed", cause=17, cause_txt="User busy",
                     channel=channel_json("c1"))) == \
        tel.ChannelHungUp(channel_id="c1", at=AT, cause=17, cause_text="User busy")
    assert one(event("StasisEnd", channel=channel_json("c1"))) == \
        tel.ChannelLeftApp(channel_id="c1", at=AT)


def test_playback_and_recording_events_find_their_channel() -> None:
    playback = {"id": "pb-1", "media_uri": "sound:beep", "target_uri": "channel:c1"}
    assert one(event("PlaybackStarted", playback={**playback, "state": "playing"})) == \
        tel.PlaybackStarted(channel_id="c1", at=AT, playback_id="pb-1")
    assert one(event("PlaybackFinished", playback={**playback, "state": "cancelled"})) == \
        tel.PlaybackFinished(channel_id="c1", at=AT, playback_id="pb-1", state="cancelled")
    on_bridge = {**playback, "target_uri": "bridge:b1", "state": "done"}
    assert translate(ari.parse_event(event("PlaybackFinished", playback=on_bridge))) == []

    rec = {"name": "r1", "format": "wav", "target_uri": "channel:c1"}
    assert one(event("RecordingFinished", recording={**rec, "state": "done", "duration": 7,
                                                     "silence_duration": 2})) == \
        tel.RecordingFinished(channel_id="c1", at=AT, name="r1", duration_s=7.0, silence_s=2.0)
    assert one(event("RecordingFailed", recording={**rec, "state": "failed",
                                                   "cause": "no space"})) == \
        tel.RecordingFailed(channel_id="c1", at=AT, name="r1", cause="no space")


def test_dial_ends_on_both_legs_only_when_final() -> None:
    progress = event("Dial", peer=channel_json("agent"), caller=channel_json("caller"),
                     dialstatus="RINGING")
    assert translate(ari.parse_event(progress)) == []
    assert translate(ari.parse_event({**progress, "dialstatus": ""})) == []
    final = translate(ari.parse_event({**progress, "dialstatus": "NOANSWER"}))
    assert final == [tel.DialEnded(channel_id="agent", at=AT, status="NOANSWER"),
                     tel.DialEnded(channel_id="caller", at=AT, status="NOANSWER")]
    alone = translate(ari.parse_event(event("Dial", peer=channel_json("agent"),
                                            dialstatus="ANSWER")))
    assert alone == [tel.DialEnded(channel_id="agent", at=AT, status="ANSWER")]


def test_events_the_domain_ignores() -> None:
    assert translate(ari.parse_event(event("ChannelVarset", variable="X", value="1"))) == []
    assert translate(ari.parse_event(event("Whatever"))) == []


def test_missing_timestamp_uses_now() -> None:
    raw = event("StasisEnd", channel=channel_json("c1"))
    del raw["timestamp"]
    before = utcnow()
    (ev,) = translate(ari.parse_event(raw))
    assert ev.at >= before


class StubClient:
    """Stands in for AriClient: records requests, answers from a table or raises."""

    app = "callcontrol"

    def __init__(self, answers: dict[tuple[str, str], Any] | None = None) -> None:
        self.sent: list[ari.Request] = []
        self.read: list[ari.Request] = []  # those whose answer was asked for
        self.answers = answers or {}

    async def request(self, request: ari.Request) -> Any:
        self.read.append(request)
        await self.send(request)
        return self.answers.get((request.method, request.path))

    async def send(self, request: ari.Request) -> None:
        self.sent.append(request)
        answer = self.answers.get((request.method, request.path))
        if isinstance(answer, Exception):
            raise answer


def port(answers: dict[tuple[str, str], Any] | None = None) -> tuple[AriTelephony, StubClient]:
    client = StubClient(answers)
    return AriTelephony(client), client  # type: ignore[arg-type]


async def test_commands_send_the_matching_requests() -> None:
    telephony, client = port()
    await telephony.answer("c1")
    await telephony.play("c1", ["sound:beep"], "pb-1")
    await telephony.record("c1", "r1", max_duration_s=5, terminate_on="#")
    await telephony.create_channel("PJSIP/agent1", "leg-1", ["agent", "a1"],
                                   caller_id='"Hotline" <100>', variables={"X": "1"})
    await telephony.dial("leg-1", 15, caller_id="c1")
    await telephony.hangup("c1", "busy")
    assert [(r.method, r.path) for r in client.sent] == [
        ("POST", "/channels/c1/answer"),
        ("POST", "/channels/c1/play/pb-1"),
        ("POST", "/channels/c1/record"),
        ("POST", "/channels/create"),
        ("POST", "/channels/leg-1/dial"),
        ("DELETE", "/channels/c1"),
    ]
    create = client.sent[3]
    assert create.params["app"] == "callcontrol"
    assert create.json == {"variables": {"X": "1", "CALLERID(all)": '"Hotline" <100>',
                                         "CONNECTEDLINE(all)": '"Hotline" <100>'}}
    assert client.sent[4].params == {"timeout": "15", "caller": "c1"}
    assert client.read == []  # no command's answer is decoded


async def test_channels_join_a_bridge_in_one_request() -> None:
    telephony, client = port()
    await telephony.add_to_bridge("b-1", "c1")
    await telephony.add_to_bridge("b-1", "c1", "leg-1")
    assert [(r.path, dict(r.params)) for r in client.sent] == [
        ("/bridges/b-1/addChannel", {"channel": "c1"}),
        ("/bridges/b-1/addChannel", {"channel": "c1,leg-1"}),
    ]


async def test_gone_playbacks_and_bridges_are_not_errors() -> None:
    telephony, _ = port({
        ("DELETE", "/playbacks/pb-1"): NotFound(404, "Playback not found"),
        ("DELETE", "/bridges/b-1"): NotFound(404, "Bridge not found"),
        ("DELETE", "/bridges/b-2"): Conflict(409, "Bridge not in Stasis application"),
        ("DELETE", "/bridges/b-3"): Conflict(409, "Something else"),
        ("DELETE", "/channels/c1"): NotFound(404, "Channel not found"),
    })
    await telephony.stop_playback("pb-1")
    await telephony.destroy_bridge("b-1")
    await telephony.destroy_bridge("b-2")  # being destroyed: out of the app, not yet gone
    with pytest.raises(Conflict):
        await telephony.destroy_bridge("b-3")
    with pytest.raises(NotFound):
        await telephony.hangup("c1")


async def test_get_variable() -> None:
    telephony, _ = port({
        ("GET", "/channels/c1/variable"): {"value": "abc@host"},
        ("GET", "/channels/c2/variable"): NotFound(404, "Provided variable was not found"),
        ("GET", "/channels/c3/variable"): NotFound(404, "Channel not found"),
    })
    assert await telephony.get_variable("c1", "X") == "abc@host"
    assert await telephony.get_variable("c2", "X") is None
    with pytest.raises(NotFound):
        await telephony.get_variable("c3", "X")


async def test_listings_keep_only_our_application() -> None:
    telephony, _ = port({
        ("GET", "/applications/callcontrol"): {"name": "callcontrol",
                                               "channel_ids": ["c1", "c2"],
                                               "bridge_ids": ["b-ours"]},
        ("GET", "/channels"): [channel_json("c1", state="Up"), channel_json("c2"),
                               channel_json("other")],
        ("GET", "/bridges"): [
            {"id": "b-ours", "channels": []},
            {"id": "b-holding", "channels": ["c1", "other"]},
            {"id": "b-foreign", "channels": ["other"]},
        ],
    })
    channels = await telephony.list_channels()
    assert [(c.channel_id, c.state, c.extension, c.bridge_ids) for c in channels] == [
        ("c1", "Up", "100", ("b-holding",)), ("c2", "Ring", "100", ())]
    bridges = await telephony.list_bridges()
    assert bridges == [tel.BridgeInfo("b-ours", ()), tel.BridgeInfo("b-holding", ("c1", "other"))]


async def test_refusals_pass_through() -> None:
    telephony, _ = port({("POST", "/channels/c1/answer"): PbxRefused(500, "boom")})
    with pytest.raises(PbxRefused):
        await telephony.answer("c1")


def test_soft_hangup_with_the_shutdown_flag_means_the_pbx_is_going_down() -> None:
    shutdown = one(event("ChannelHangupRequest", cause=4, soft=True, channel=channel_json("c1")))
    assert isinstance(shutdown, tel.ChannelHungUp) and shutdown.pbx_shutdown
    hard = one(event("ChannelHangupRequest", cause=4, channel=channel_json("c1")))
    assert isinstance(hard, tel.ChannelHungUp) and not hard.pbx_shutdown
