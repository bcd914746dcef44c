"""A caller's stay in a queue, end to end over the fake switch."""

from __future__ import annotations

import asyncio
from typing import Any

from callcontrol.acd.agents import AgentState
from callcontrol.acd.connect import serve_in_queue
from callcontrol.acd.router import Acd
from callcontrol.calls.context import CallerInfo, QueueRequest, QueueResult
from callcontrol.config import QueueConfig
from callcontrol.errors import NotFound
from callcontrol.store.records import AgentEvent
from callcontrol.telephony import ChannelHungUp, ChannelStateChanged, DtmfReceived
from callcontrol_testing.fake_call import FakeCall

from .conftest import Harness, agent, queue, wait_for

S = AgentState


def call(h: Harness, name: str, number: str = "") -> FakeCall:
    return h.switch.add(FakeCall(h.telephony, name, caller=CallerInfo(number=number)))


def start(h: Harness, acd: Acd, c: FakeCall, **kw: Any) -> asyncio.Task[QueueResult]:
    kw.setdefault("name", "q")
    return h.spawn(serve_in_queue(c, QueueRequest(**kw), acd))


def commands(h: Harness, name: str, **match: Any) -> list[dict[str, Any]]:
    return [a for n, a in h.telephony.commands
            if n == name and all(a.get(k) == v for k, v in match.items())]


async def one_agent(h: Harness, **q: Any) -> Acd:
    return await h.build([agent("a1", ["q"])], {"q": queue(**q)})


async def test_caller_reaches_agent_and_goes_on_after_agent_hangs_up(harness: Harness) -> None:
    acd = await one_agent(harness, wrap_up=0.2)
    c = call(harness, "c1")
    task = start(harness, acd, c)
    await wait_for(lambda: acd.board.agents["a1"].state is S.ON_CALL)
    leg = harness.switch.dialed("PJSIP/ep-a1")[0]
    assert commands(harness, "create_channel", channel_id=leg)[0]["app_args"] == [
        "agent", "c1", "a1"]
    assert harness.telephony.bridges == {"c1-queue": ["c1-caller", leg]}
    assert commands(harness, "add_to_bridge") == [  # caller and agent in one request
        {"bridge_id": "c1-queue", "channel_ids": ["c1-caller", leg]}]
    assert harness.telephony.names().index("start_moh") < harness.telephony.names().index(
        "create_bridge")
    harness.switch.post(ChannelHungUp(channel_id=leg))
    result = await asyncio.wait_for(task, 2)
    assert result.exit == "after" and result.agent_id == "a1"
    assert harness.telephony.bridges == {}
    assert acd.board.agents["a1"].state is S.WRAP_UP
    await wait_for(lambda: acd.board.agents["a1"].state is S.AVAILABLE)
    connected = harness.log.calls("agent_connected")[0]
    assert connected.data["agent_id"] == "a1" and connected.data["wait_s"] >= 0
    assert [r.data["reason"] for r in harness.log.calls("queue_left")] == ["answered"]


async def test_caller_hangup_while_talking_hangs_up_agent_leg(harness: Harness) -> None:
    acd = await one_agent(harness)
    c = call(harness, "c1")
    task = start(harness, acd, c)
    await wait_for(lambda: acd.board.agents["a1"].state is S.ON_CALL)
    leg = harness.switch.dialed("PJSIP/ep-a1")[0]
    harness.switch.post(ChannelHungUp(channel_id=c.channel_id))
    result = await asyncio.wait_for(task, 2)
    assert result == QueueResult("hangup", "a1", {"outcome": "completed"})
    assert commands(harness, "hangup", channel_id=leg)
    assert harness.telephony.bridges == {}
    assert harness.log.calls("agent_disconnected")[0].data["by"] == "caller"


async def test_ring_no_answer_rolls_over_and_keeps_place(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["q"]), agent("a2", ["q"])], {"q": queue()})
    harness.switch.behaviour["PJSIP/ep-a1"] = "ignore"
    acd.board.agents["a2"].idle_since = acd.board.agents["a1"].idle_since  # tie: a1 first
    acd.board.agents["a1"].idle_since = acd.board.agents["a1"].idle_since.replace(year=2000)
    c = call(harness, "c1")
    start(harness, acd, c)
    await wait_for(lambda: acd.board.agents["a2"].state is S.ON_CALL)
    a1_leg = harness.switch.dialed("PJSIP/ep-a1")[0]
    assert commands(harness, "hangup", channel_id=a1_leg)
    assert acd.board.agents["a1"].consecutive_no_answers == 1
    assert acd.board.agents["a1"].state is S.AVAILABLE


async def test_three_no_answers_auto_pause(harness: Harness) -> None:
    acd = await one_agent(harness, ring_timeout=0.1, max_no_answer=3)
    harness.switch.behaviour["PJSIP/ep-a1"] = "busy"
    c = call(harness, "c1")
    task = start(harness, acd, c, max_wait=5)
    await wait_for(lambda: acd.board.agents["a1"].state is S.PAUSED)
    assert acd.board.agents["a1"].reason == "no_answer"
    assert len(harness.switch.dialed("PJSIP/ep-a1")) == 3
    assert not task.done()  # paused still counts as logged in: the caller keeps waiting


async def test_caller_hangs_up_while_agent_rings(harness: Harness) -> None:
    acd = await one_agent(harness, ring_timeout=5)
    harness.switch.behaviour["PJSIP/ep-a1"] = "ignore"
    c = call(harness, "c1")
    task = start(harness, acd, c)
    await wait_for(lambda: bool(harness.switch.dialed("PJSIP/ep-a1")))
    assert acd.board.agents["a1"].state is S.RINGING
    harness.switch.post(ChannelHungUp(channel_id=c.channel_id))
    result = await asyncio.wait_for(task, 2)
    assert result.data == {"outcome": "abandoned"}
    assert commands(harness, "hangup", channel_id=harness.switch.dialed("PJSIP/ep-a1")[0])
    assert acd.board.agents["a1"].state is S.AVAILABLE
    assert acd.board.agents["a1"].consecutive_no_answers == 0
    assert harness.log.calls("queue_left")[0].data["reason"] == "abandoned"


async def test_agent_answers_as_caller_abandons(harness: Harness) -> None:
    acd = await one_agent(harness, ring_timeout=5)
    harness.switch.behaviour["PJSIP/ep-a1"] = "ignore"
    c = call(harness, "c1")
    task = start(harness, acd, c)
    await wait_for(lambda: bool(harness.switch.dialed("PJSIP/ep-a1")))
    leg = harness.switch.dialed("PJSIP/ep-a1")[0]
    # Both arrive together; the caller is gone, so Asterisk refuses to bridge it.
    harness.telephony.fail["add_to_bridge"] = NotFound(404, "channel not found")
    harness.switch.post(ChannelStateChanged(channel_id=leg, state="Up"))
    harness.switch.post(ChannelHungUp(channel_id=c.channel_id))
    result = await asyncio.wait_for(task, 2)
    assert result.data == {"outcome": "abandoned"}
    assert harness.telephony.bridges == {}
    assert commands(harness, "destroy_bridge")
    assert commands(harness, "hangup", channel_id=leg)
    assert acd.board.agents["a1"].state is S.AVAILABLE
    assert harness.log.calls("agent_connected") == []


async def test_wrap_up_holds_agent_out_of_rotation(harness: Harness) -> None:
    acd = await one_agent(harness, wrap_up=0.4)
    first = call(harness, "c1")
    t1 = start(harness, acd, first)
    await wait_for(lambda: acd.board.agents["a1"].state is S.ON_CALL)
    harness.switch.post(ChannelHungUp(channel_id=harness.switch.dialed("PJSIP/ep-a1")[0]))
    await asyncio.wait_for(t1, 2)
    second = call(harness, "c2")
    start(harness, acd, second)
    await wait_for(lambda: acd.board.agents["a1"].state is S.ON_CALL)
    # From the agent's own state log, not from when this task happened to wake up: the
    # wrap-up lasted its 0.4 s, and only then was the agent offered to the waiting caller.
    states = [r.data for r in harness.log.records
              if isinstance(r, AgentEvent) and r.agent_id == "a1"][-4:]
    assert [(d["from"], d["to"], d["reason"]) for d in states] == [
        ("on_call", "wrap_up", "call_ended"), ("wrap_up", "available", "wrap_up_ended"),
        ("available", "ringing", "offered"), ("ringing", "on_call", "answered")]
    assert states[1]["seconds"] >= 0.39 and states[2]["call_id"] == "c2"
    assert harness.log.calls("agent_connected")[-1].data["wait_s"] >= 0.39


async def test_exits_no_agents_full_and_timeout(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue(max_length=1)}, login=False)
    assert (await serve_in_queue(call(harness, "c0"), QueueRequest(name="q"), acd)).exit == \
        "no_agents"
    acd.board.login("a1")
    acd.board.pause("a1", "break")
    waiting = start(harness, acd, call(harness, "c1"), max_wait=0.3)
    await wait_for(lambda: len(acd.lines["q"]) == 1)
    assert (await serve_in_queue(call(harness, "c2"), QueueRequest(name="q"), acd)).exit == \
        "full"
    assert (await asyncio.wait_for(waiting, 2)).exit == "timeout"
    reasons = [r.data["reason"] for r in harness.log.records
               if getattr(r, "kind", "") in ("queue_left", "queue_refused")]
    assert reasons == ["no_agents", "overflow", "timed_out"]


async def test_no_agents_while_waiting_when_last_agent_logs_out(harness: Harness) -> None:
    acd = await one_agent(harness)
    acd.board.pause("a1", "break")
    task = start(harness, acd, call(harness, "c1"))
    await wait_for(lambda: len(acd.lines["q"]) == 1)
    acd.board.logout("a1")
    assert (await asyncio.wait_for(task, 2)).exit == "no_agents"


async def test_queue_key_leaves_and_position_is_announced(harness: Harness) -> None:
    acd = await one_agent(harness)
    acd.board.pause("a1", "break")
    c = call(harness, "c1")
    task = start(harness, acd, c, keys={"0": "operator"}, announce_position=0.1)
    await wait_for(lambda: bool(commands(harness, "play")))
    assert commands(harness, "play")[0]["media"] == [
        "sound:queue-thereare", "number:1", "sound:queue-callswaiting"]
    await wait_for(lambda: len(commands(harness, "start_moh")) >= 2)  # back on hold after
    harness.switch.post(DtmfReceived(channel_id=c.channel_id, digit="0"))
    assert (await asyncio.wait_for(task, 2)).exit == "key:0"
    assert harness.log.calls("queue_left")[0].data == {
        **harness.log.calls("queue_left")[0].data, "reason": "key", "key": "0"}


async def test_callback_keeps_place_merges_and_connects_agent_then_customer(
    harness: Harness,
) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue()})
    acd.board.pause("a1", "break")
    first = call(harness, "c1", number="+4930111")
    t1 = start(harness, acd, first, callback=True)
    await wait_for(lambda: len(acd.lines["q"]) == 1)
    later = call(harness, "c2", number="+4930222")
    t2 = start(harness, acd, later)
    await wait_for(lambda: len(acd.lines["q"]) == 2)
    for digit in "11":
        harness.switch.post(DtmfReceived(channel_id=first.channel_id, digit=digit))
        await wait_for(lambda: bool(commands(harness, "play")))
    result = await asyncio.wait_for(t1, 2)
    assert result.exit == "callback" and result.data == {"number": "+4930111"}
    # The same number asks for a callback again from a new call: merged, old place kept.
    again = call(harness, "c3", number="+4930111")
    t3 = start(harness, acd, again, callback=True)
    await wait_for(lambda: [e.call_id for e in acd.lines["q"]] == ["c3", "c2"])
    for digit in "11":
        harness.switch.post(DtmfReceived(channel_id=again.channel_id, digit=digit))
    assert (await asyncio.wait_for(t3, 2)).exit == "callback"
    assert len(acd.lines["q"]) == 2 and harness.log.calls("callback_merged")
    acd.board.unpause("a1")
    await wait_for(lambda: bool(harness.log.calls("callback_connected")))
    names = [(n, a.get("endpoint")) for n, a in harness.telephony.commands
             if n == "create_channel"]
    assert names == [("create_channel", "PJSIP/ep-a1"), ("create_channel", "PJSIP/+4930111")]
    assert not t2.done()  # the later caller still waits behind the callback
    agent_leg, customer_leg = list(harness.switch.endpoints)
    assert harness.telephony.bridges == {"c3-callback": [agent_leg, customer_leg]}
    assert commands(harness, "add_to_bridge") == [  # both legs in one request
        {"bridge_id": "c3-callback", "channel_ids": [agent_leg, customer_leg]}]
    harness.switch.post(ChannelHungUp(channel_id=customer_leg))
    await wait_for(lambda: "c3-callback" not in harness.telephony.bridges)
    assert commands(harness, "hangup", channel_id=agent_leg)
    await wait_for(lambda: acd.board.agents["a1"].call_id == "c2")  # then the later caller


async def test_failed_callback_is_retried_then_dropped(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue()})
    harness.switch.behaviour["PJSIP/+4930111"] = "busy"
    acd.board.pause("a1", "break")
    c = call(harness, "c1", number="+4930111")
    task = start(harness, acd, c, callback=True)
    await wait_for(lambda: len(acd.lines["q"]) == 1)
    for digit in "11":
        harness.switch.post(DtmfReceived(channel_id=c.channel_id, digit=digit))
    assert (await asyncio.wait_for(task, 2)).exit == "callback"
    acd.board.unpause("a1")
    await wait_for(lambda: bool(harness.log.calls("callback_failed")), within=5)
    assert len(harness.log.calls("callback_retry")) == 2
    assert len(harness.switch.dialed("PJSIP/+4930111")) == 3
    assert len(acd.lines["q"]) == 0
    await wait_for(lambda: acd.board.agents["a1"].state is S.AVAILABLE)


async def test_hold_unhold_and_transfer_to_a_number(harness: Harness) -> None:
    acd = await one_agent(harness)
    c = call(harness, "c1")
    task = start(harness, acd, c)
    await wait_for(lambda: acd.board.agents["a1"].state is S.ON_CALL)
    acd.hold("a1")
    await wait_for(lambda: bool(commands(harness, "remove_from_bridge")))
    assert harness.telephony.names()[-1] == "start_moh"
    acd.unhold("a1")
    await wait_for(lambda: harness.telephony.bridges["c1-queue"][-1] == c.channel_id)
    acd.transfer("a1", "number:+4930999")
    result = await asyncio.wait_for(task, 2)
    assert result.data["transferred_to"] == "number:+4930999"
    assert c.dials[0].to == "number:+4930999"
    assert c.dials[0].transfer  # checked by the API against the token's role, not as a flow's
    assert harness.log.calls("agent_disconnected")[0].data["by"] == "transfer"
    assert harness.telephony.bridges == {}


async def test_transfer_to_another_queue(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["q"]), agent("b1", ["other"])],
                              {"q": queue(), "other": QueueConfig(ring_timeout=0.3, wrap_up=0)})
    c = call(harness, "c1")
    task = start(harness, acd, c)
    await wait_for(lambda: acd.board.agents["a1"].state is S.ON_CALL)
    acd.transfer("a1", "queue:other")
    await wait_for(lambda: acd.board.agents["b1"].state is S.ON_CALL)
    harness.switch.post(ChannelHungUp(channel_id=harness.switch.dialed("PJSIP/ep-b1")[0]))
    result = await asyncio.wait_for(task, 2)
    assert result.exit == "after" and result.agent_id == "b1"
    assert result.data["transferred_from"] == "a1"


def test_estimated_wait_is_spoken_in_minutes() -> None:
    from callcontrol.acd.connect import estimated_wait_media

    assert estimated_wait_media(None) == []
    assert estimated_wait_media(20) == ["sound:queue-holdtime", "sound:queue-less-than",
                                        "number:1", "sound:queue-minute"]
    assert estimated_wait_media(70) == ["sound:queue-holdtime", "number:1",
                                        "sound:queue-minute"]
    assert estimated_wait_media(400) == ["sound:queue-holdtime", "number:7",
                                         "sound:queue-minutes"]
