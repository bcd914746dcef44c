"""The ACD on real Asterisk: pjsua2 callers and agent headsets, the daemon as a child process.

Each test drives one scenario of issue 4 on its own queue and agents (tests/integration/
acd_bed.py) and asserts from the daemon's database, its API, the headsets' SIP events and the
recordings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from acd_bed import (
    AGENT_HZ,
    CALLER_HZ,
    EXTENSIONS,
    AcdBed,
    eventually,
    max_concurrent_calls,
    running_bed,
)

from callcontrol import audio
from callcontrol.sipua.client import SipPeer, SipPeerError

pytestmark = [pytest.mark.integration, pytest.mark.postgres,
              pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bed(tmp_path_factory: pytest.TempPathFactory, module_db_url: str
              ) -> AsyncIterator[AcdBed]:
    async with running_bed(tmp_path_factory.mktemp("acd"), f"acd-{os.getpid()}",
                           module_db_url) as running:
        yield running


async def connected_agents(bed: AcdBed, queue: str, count: int) -> list[str]:
    """The agents of the first ``count`` ``agent_connected`` events of ``queue``."""

    async def check() -> list[str] | None:
        rows = await bed.call_events("agent_connected", queue)
        return [r.data["agent_id"] for r in rows] if len(rows) >= count else None

    result: list[str] = await eventually(check, 20, f"{count} connections in {queue}")
    return result


async def test_caller_reaches_a_free_agent_with_audio_both_ways_and_longest_idle_order(
    bed: AcdBed, tmp_path: Path
) -> None:
    await bed.set_state("b1", "logged_out")
    await bed.set_state("b2", "logged_out")
    async with bed.headset("b1") as b1, bed.headset("b2") as b2:
        await bed.set_state("b1", "available")  # b1 idle longest, then b2
        await bed.set_state("b2", "available")
        heard = tmp_path / "caller-1.wav"
        known = {c["call_id"] for c in await bed.calls(EXTENSIONS["li"])}  # earlier tests'
        async with bed.caller() as caller:
            for number, agent in enumerate((b1, b2, b1), 1):
                await bed.wait_state("b1", "available")
                await bed.wait_state("b2", "available")
                call = await bed.call(caller, "li", record=heard if number == 1 else None)
                incoming = await agent.wait_for("incoming", 10)
                await agent.wait_for("confirmed", 10, call_id=incoming["call_id"])
                await asyncio.sleep(2.0)  # two seconds of conversation: tones both ways
                await caller.hangup(call)
                ended = await caller.wait_for("disconnected", 10, call_id=call)
                agent_end = await agent.wait_for("disconnected", 10,
                                                 call_id=incoming["call_id"])
                if number == 1:
                    assert ended["recording"] == str(heard)
                    assert audio.has_tone(heard, AGENT_HZ), "caller did not hear the agent"
                    assert not audio.has_tone(heard, CALLER_HZ, min_ratio=0.5)
                    agent_heard = agent_end["recording"]
                    assert audio.has_tone(agent_heard, CALLER_HZ), "agent did not hear caller"
    calls = [c for c in await bed.ended_calls(EXTENSIONS["li"], len(known) + 3)
             if c["call_id"] not in known]
    assert [c["agent_id"] for c in calls] == ["b1", "b2", "b1"]
    assert all(c["outcome"] == "completed" for c in calls), calls
    ours = {c["call_id"] for c in calls}
    connected = [r for r in await bed.call_events("agent_connected", "li") if r.owner in ours]
    assert [r.data["agent_id"] for r in connected] == ["b1", "b2", "b1"]
    disconnected = [r for r in await bed.call_events("agent_disconnected", "li")
                    if r.owner in ours]
    assert [r.data["by"] for r in disconnected] == ["caller"] * 3
    assert all(r.data["talk_s"] >= 1.5 for r in disconnected)
    assert (await bed.bridges()) == []


async def talk_then_hang_up(bed: AcdBed, agent: SipPeer, caller: SipPeer, call: str,
                            seconds: float = 1.0) -> str:
    """The agent's headset answers; after ``seconds`` the caller hangs up. Returns the
    headset's call id."""
    incoming = await agent.wait_for("incoming", 10)
    await agent.wait_for("confirmed", 10, call_id=incoming["call_id"])
    await asyncio.sleep(seconds)
    await caller.hangup(call)
    await caller.wait_for("disconnected", 10, call_id=call)
    await agent.wait_for("disconnected", 10, call_id=incoming["call_id"])
    return str(incoming["call_id"])


async def test_wrap_up_holds_the_agent_out_of_rotation_for_its_time(bed: AcdBed) -> None:
    await bed.set_state("b2", "logged_out")
    async with bed.headset("b1") as b1, bed.caller() as caller:
        await bed.set_state("b1", "available")
        await bed.wait_state("b1", "available")  # an earlier test's wrap-up is over
        known = await bed.calls(EXTENSIONS["li"])
        first = await bed.call(caller, "li")
        first_id = await bed.new_call(EXTENSIONS["li"], known)
        await talk_then_hang_up(bed, b1, caller, first, 0.5)
        await bed.wait_state("b1", "wrap_up", timeout=5)
        known = await bed.calls(EXTENSIONS["li"])
        second = await bed.call(caller, "li")  # b1 (wrap-up 3 s) is the queue's only agent
        second_id = await bed.new_call(EXTENSIONS["li"], known)
        await talk_then_hang_up(bed, b1, caller, second, 0.5)
    wrap_up = await bed.state_change("b1", "wrap_up", first_id)
    released = await bed.state_change("b1", "available", first_id)
    rung = await bed.state_change("b1", "ringing", second_id)
    assert released.data["reason"] == "wrap_up_ended"
    assert 2.9 <= released.data["seconds"] <= 4.0  # the agent override: 3 s
    # Held out of rotation while the second caller waited, offered to it once released.
    (entered,) = [r for r in await bed.call_events("queue_entered", "li") if r.owner == second_id]
    assert wrap_up.at < entered.at < released.at <= rung.at
    between = [s for s in await bed.agent_states("b1") if wrap_up.at < s.at < released.at]
    assert between == [], between
    (connected,) = [r for r in await bed.call_events("agent_connected", "li")
                    if r.owner == second_id]
    assert connected.data["agent_id"] == "b1"
    assert connected.data["wait_s"] >= (released.at - entered.at).total_seconds() - 0.1


async def test_skills_beat_idle_time_over_several_calls(bed: AcdBed) -> None:
    for agent_id in ("s1", "s2"):
        await bed.set_state(agent_id, "logged_out")
    async with bed.headset("s1") as s1, bed.headset("s2") as s2, bed.caller() as caller:
        await bed.set_state("s2", "available")  # s2 (de 1, en 2) idle longest
        await bed.set_state("s1", "available")  # s1 (de 3)
        for key, agent in (("sk_de", s1), ("sk_en", s2), ("sk_de", s1)):
            await bed.wait_state("s1", "available")
            await bed.wait_state("s2", "available")
            call = await bed.call(caller, key)
            await talk_then_hang_up(bed, agent, caller, call, 0.5)
    assert await connected_agents(bed, "sk", 3) == ["s1", "s2", "s1"]
    logins = {a: [s.at for s in await bed.agent_states(a) if s.data["reason"] == "login"][-1]
              for a in ("s1", "s2")}
    assert logins["s2"] < logins["s1"]  # s2 had been idle longer when s1 got the first call


async def test_priority_callers_jump_ahead(bed: AcdBed) -> None:
    await bed.set_state("p1", "paused")
    async with bed.headset("p1") as p1, bed.caller() as caller:
        calls = []
        for count, key in enumerate(("prio_a", "prio_b", "prio_vip"), 1):
            calls.append(await bed.call(caller, key))
            await eventually(lambda n=count: _entered(bed, "prio", n), 10, "queue entries")
        await bed.action("p1", "unpause")
        for _ in calls:  # the agent hangs up first: each caller leaves by the `after` exit
            incoming = await p1.wait_for("incoming", 10)
            await p1.wait_for("confirmed", 10, call_id=incoming["call_id"])
            await asyncio.sleep(0.5)
            await p1.hangup(incoming["call_id"])
        for call in calls:
            await caller.wait_for("disconnected", 10, call_id=call)
    order = []
    for row in await bed.call_events("agent_connected", "prio"):
        (call,) = await bed.call_rows(call_id=row.owner)
        order.append(call.extension)
    assert order == [EXTENSIONS["prio_vip"], EXTENSIONS["prio_a"], EXTENSIONS["prio_b"]]
    for key in ("prio_a", "prio_b", "prio_vip"):
        (row,) = await bed.ended_calls(EXTENSIONS[key], 1)
        assert "exit_after" in row["tags"] and row["outcome"] == "completed", row


async def _entered(bed: AcdBed, queue: str, count: int) -> bool:
    return await _events(bed, "queue_entered", queue, count)


async def _events(bed: AcdBed, kind: str, queue: str, count: int) -> bool:
    return len(await bed.call_events(kind, queue)) >= count


async def test_ring_no_answer_rolls_over_and_three_no_answers_pause_the_agent(
    bed: AcdBed,
) -> None:
    for agent_id in ("n1", "n2"):
        await bed.set_state(agent_id, "logged_out")
    async with bed.headset("n1", auto_answer=False) as n1, bed.headset("n2") as n2, \
            bed.caller() as caller:
        await bed.set_state("n1", "available")  # idle longest: always offered first
        await bed.set_state("n2", "available")
        for _ in range(3):
            await bed.wait_state("n2", "available")
            call = await bed.call(caller, "rna")
            ringing = await n1.wait_for("incoming", 10)
            stopped = await n1.wait_for("disconnected", 10, call_id=ringing["call_id"])
            assert stopped["connect_seconds"] == 0
            await talk_then_hang_up(bed, n2, caller, call, 0.5)
        n1_state = await bed.wait_state("n1", "paused")
    assert n1_state["reason"] == "no_answer"
    for call_id in [r.owner for r in await bed.call_events("queue_entered", "rna")]:
        kinds = [(r.kind, r.data.get("agent_id")) for r in await bed.timeline(call_id)
                 if r.kind.startswith("agent_")]
        assert kinds[:4] == [("agent_offered", "n1"), ("agent_no_answer", "n1"),
                             ("agent_offered", "n2"), ("agent_connected", "n2")], kinds
    to_states = [(s.data["to"], s.data["reason"]) for s in await bed.agent_states("n1")
                 if s.data["from"] == "ringing"]
    assert to_states == [("available", "no_answer"), ("available", "no_answer"),
                         ("paused", "no_answer")]


async def test_paused_logged_out_and_unregistered_agents_are_never_rung(bed: AcdBed) -> None:
    await bed.set_state("u1", "available")  # no headset registered: unreachable
    assert (await bed.agent("u1"))["state"] == "unreachable"
    await bed.set_state("u3", "logged_out")
    async with bed.headset("u2") as u2, bed.headset("u3") as u3, bed.headset("u4") as u4, \
            bed.caller() as caller:
        await bed.set_state("u2", "paused")
        await bed.set_state("u4", "available")
        for _ in range(3):
            await bed.wait_state("u4", "available")
            call = await bed.call(caller, "nr")
            await talk_then_hang_up(bed, u4, caller, call, 0.3)
        assert u2.events("incoming") == [] and u3.events("incoming") == []
    offered = {r.data["agent_id"] for r in await bed.call_events("agent_offered", "nr")}
    assert offered == {"u4"}
    assert len(await connected_agents(bed, "nr", 3)) == 3
    assert not [s for s in await bed.agent_states("u1") if s.data["to"] == "ringing"]


async def test_caller_hanging_up_while_the_agent_rings_stops_the_ring(bed: AcdBed) -> None:
    async with bed.headset("r1", auto_answer=False) as r1, bed.caller() as caller:
        await bed.set_state("r1", "available")
        await bed.wait_state("r1", "available")
        call = await bed.call(caller, "race")
        ringing = await r1.wait_for("incoming", 10)
        assert (await bed.agent("r1"))["state"] == "ringing"
        await caller.hangup(call)
        stopped = await r1.wait_for("disconnected", 5, call_id=ringing["call_id"])
        assert stopped["connect_seconds"] == 0
        await bed.wait_state("r1", "available", timeout=5)
    (row,) = [c for c in await bed.ended_calls(EXTENSIONS["race"], 1)][-1:]
    assert row["outcome"] == "abandoned"
    left = [r for r in await bed.call_events("queue_left", "race") if r.owner == row["call_id"]]
    assert [r.data["reason"] for r in left] == ["abandoned"]
    # this call's row (the API showed "available" before the row may be written)
    last = await bed.state_change("r1", "available", row["call_id"])
    assert (last.data["from"], last.data["reason"]) == ("ringing", "caller_left")


async def test_agent_answering_as_the_caller_abandons_leaves_no_orphan_bridge(
    bed: AcdBed,
) -> None:
    async with bed.headset("r1", auto_answer=False) as r1, bed.caller() as caller:
        await bed.set_state("r1", "available")
        # (seconds before the caller's hangup, seconds before the agent's answer)
        for hang_up_in, answer_in in ((0.0, 0.0), (0.05, 0.0), (0.0, 0.05), (0.2, 0.0)):
            await bed.wait_state("r1", "available", timeout=5)
            call = await bed.call(caller, "race")
            ringing = await r1.wait_for("incoming", 10)
            await asyncio.gather(_later(hang_up_in, caller.hangup(call)),
                                 _later(answer_in, _answer(r1, ringing["call_id"], bed)))
            await r1.wait_for("disconnected", 10, call_id=ringing["call_id"])
            await caller.wait_for("disconnected", 10, call_id=call)
            await bed.wait_state("r1", "available", timeout=5)
            assert await eventually(lambda: _no_bridges(bed), 5, "no bridges left")
    assert all(c["ended"] for c in await bed.calls(EXTENSIONS["race"]))


async def _later(seconds: float, action: Awaitable[None]) -> None:
    await asyncio.sleep(seconds)
    await action


async def _answer(headset: SipPeer, call: str, bed: AcdBed) -> None:
    """Answer, unless the call is already gone (the caller's CANCEL came first)."""
    with contextlib.suppress(SipPeerError):
        await headset.answer(call, play_wav=bed.agent_wav)


async def _no_bridges(bed: AcdBed) -> bool:
    return await bed.bridges() == []


async def test_two_queues_sharing_agents_never_ring_one_agent_twice(bed: AcdBed) -> None:
    async with bed.headset("h1", auto_answer=False) as h1, \
            bed.headset("h2", auto_answer=False) as h2, bed.caller() as caller:
        await bed.set_state("h1", "available")
        await bed.set_state("h2", "available")
        calls = [await bed.call(caller, key) for key in ("sh1", "sh2", "sh1")]
        # Three callers, two agents, rings of 2 s: the agents are offered round and round.
        await h1.wait_for("incoming", 10)
        await h2.wait_for("incoming", 10)
        await h1.wait_for("incoming", 10)
        await h2.wait_for("incoming", 10)
        for call in calls:
            await caller.hangup(call)
            await caller.wait_for("disconnected", 10, call_id=call)
        await bed.wait_state("h1", "available", timeout=5)
        await bed.wait_state("h2", "available", timeout=5)
        for headset in (h1, h2):
            calls = [(e.kind, e.get("call_id")) for e in headset.events()
                     if e.kind in ("incoming", "ended")]
            assert max_concurrent_calls(headset.events()) == 1, (headset.name, calls)
    offers = [(r.data["queue"], r.data["agent_id"])
              for queue in ("sh1", "sh2") for r in await bed.call_events("agent_offered", queue)]
    assert {q for q, _ in offers} == {"sh1", "sh2"} and {a for _, a in offers} == {"h1", "h2"}


async def test_max_wait_no_agents_and_full_queue_take_the_flow_exits(bed: AcdBed) -> None:
    await bed.set_state("e1", "paused")  # staffs mw and full, never free
    await bed.set_state("e2", "logged_out")  # the only agent of empty

    async def timed_out() -> None:
        async with bed.caller() as caller:
            call = await bed.call(caller, "mw")
            await caller.wait_for("disconnected", 10, call_id=call)

    async def no_agents() -> None:
        async with bed.caller() as caller:
            call = await bed.call(caller, "empty")
            await caller.wait_for("disconnected", 10, call_id=call)

    async def full() -> None:
        async with bed.caller() as caller:
            waiting = await bed.call(caller, "full")
            await eventually(lambda: _entered(bed, "full", 1), 10, "first caller in line")
            refused = await bed.call(caller, "full")
            await caller.wait_for("disconnected", 10, call_id=refused)
            await caller.hangup(waiting)
            await caller.wait_for("disconnected", 10, call_id=waiting)

    await asyncio.gather(timed_out(), no_agents(), full())
    (mw,) = await bed.ended_calls(EXTENSIONS["mw"], 1)
    assert "exit_timeout" in mw["tags"], mw
    left = [r.data for r in await bed.call_events("queue_left", "mw")]
    assert [d["reason"] for d in left] == ["timed_out"] and 1.9 <= left[0]["wait_s"] <= 3.5
    (empty,) = await bed.ended_calls(EXTENSIONS["empty"], 1)
    assert "exit_no_agents" in empty["tags"], empty
    assert [r.data["reason"] for r in await bed.call_events("queue_refused", "empty")] == [
        "no_agents"]
    first, second = await bed.ended_calls(EXTENSIONS["full"], 2)
    assert "exit_full" in second["tags"] and "exit_full" not in first["tags"], (first, second)
    assert first["outcome"] == "abandoned"
    assert [r.data["reason"] for r in await bed.call_events("queue_refused", "full")] == [
        "overflow"]


async def test_feature_codes_from_the_headset_change_the_agent_state(bed: AcdBed) -> None:
    await bed.set_state("f1", "logged_out")
    async with bed.headset("f1") as f1:
        for code, expected in (("*45", "available"), ("*46", "paused"), ("*46", "available"),
                               ("*45", "logged_out")):
            call = await f1.call(bed.uri(code))
            await f1.wait_for("confirmed", 10, call_id=call)
            ended = await f1.wait_for("disconnected", 15, call_id=call)
            assert ended["connect_seconds"] > 0.3  # the confirmation was played
            assert (await bed.agent("f1"))["state"] == expected, code
    status, body = await bed.api("POST", "/api/agents/f1/logout")  # already logged out
    assert (status, body["error"]["id"]) == (409, "agent_state"), body
    status, body = await bed.api("POST", "/api/agents/nobody/login")
    assert (status, body["error"]["id"]) == (404, "agent_not_found"), body
    reasons = [(s.data["to"], s.data["reason"]) for s in await bed.agent_states("f1")]
    assert reasons[-4:] == [("available", "login"), ("paused", "break"),
                            ("available", "unpause"), ("logged_out", "logout")]


async def test_callback_keeps_its_place_merges_duplicates_and_connects_agent_and_customer(
    bed: AcdBed,
) -> None:
    await bed.set_state("c1", "paused")  # staffed, not free: callers wait

    async def ask_callback(customer: SipPeer) -> str:
        call = await bed.call(customer, "cb")
        await customer.send_dtmf(call, "1")
        await asyncio.sleep(1.0)  # the number is read back; "1" confirms
        await customer.send_dtmf(call, "1")
        await customer.wait_for("disconnected", 15, call_id=call)
        return call

    async with bed.headset("c1") as c1, bed.headset("y1") as later_caller, \
            bed.caller(register=True) as customer:
        await ask_callback(customer)
        await eventually(lambda: _events(bed, "callback_requested", "cb", 1), 5, "callback")
        await ask_callback(customer)  # the same number again: merged into one entry
        await eventually(lambda: _events(bed, "callback_requested", "cb", 2), 5, "callback")
        assert len(await bed.call_events("callback_merged", "cb")) == 1
        live = await later_caller.call(bed.uri(EXTENSIONS["cb"]), play_wav=bed.caller_wav)
        await later_caller.wait_for("confirmed", 10, call_id=live)
        await eventually(lambda: _entered(bed, "cb", 3), 10, "the later caller in line")
        assert (await bed.queue("cb"))["callbacks"] == 1
        await bed.action("c1", "unpause")
        agent_leg = await c1.wait_for("incoming", 10)  # the agent first ...
        await c1.wait_for("confirmed", 10, call_id=agent_leg["call_id"])
        customer_leg = await customer.wait_for("incoming", 10)  # ... then the customer
        await customer.wait_for("confirmed", 10, call_id=customer_leg["call_id"])
        await asyncio.sleep(2.0)
        await customer.hangup(customer_leg["call_id"])
        heard = await customer.wait_for("disconnected", 10, call_id=customer_leg["call_id"])
        agent_heard = await c1.wait_for("disconnected", 10, call_id=agent_leg["call_id"])
        assert audio.has_tone(heard["recording"], AGENT_HZ)
        assert audio.has_tone(agent_heard["recording"], CALLER_HZ)
        # Only then the later live caller reaches the agent.
        await talk_then_hang_up(bed, c1, later_caller, live, 0.5)
    (connected,) = await bed.call_events("callback_connected", "cb")
    assert len(await bed.call_events("callback_attempt", "cb")) == 1
    (live_connected,) = await bed.call_events("agent_connected", "cb")
    assert connected.at < live_connected.at
    assert (await bed.queue("cb"))["callbacks"] == 0


async def test_statistics_of_a_scripted_scenario(bed: AcdBed) -> None:
    await bed.set_state("t1", "paused")
    await bed.set_state("t2", "paused")
    async with bed.headset("t1") as t1, bed.headset("t2") as t2:

        async def hang_up_after(seconds: float, entered: int) -> None:
            async with bed.caller() as caller:
                call = await bed.call(caller, "st")
                await eventually(lambda: _entered(bed, "st", entered), 10, "in line")
                await asyncio.sleep(seconds)
                await caller.hangup(call)
                await caller.wait_for("disconnected", 10, call_id=call)

        async def times_out() -> None:
            async with bed.caller() as caller:
                call = await bed.call(caller, "st")
                await caller.wait_for("disconnected", 12, call_id=call)

        # 1 short abandon (< 2 s), 1 abandon (>= 2 s), 1 time-out (max_wait 6 s)
        await asyncio.gather(hang_up_after(0.3, 1), hang_up_after(3.5, 1), times_out())
        await bed.action("t1", "unpause")
        await bed.action("t2", "unpause")
        agents = [asyncio.create_task(_agent_hangs_up_calls(a)) for a in (t1, t2)]
        try:
            async with bed.caller() as caller:
                for _ in range(7):  # 7 answered: the agent hangs up after a second
                    call = await bed.call(caller, "st")
                    await caller.wait_for("disconnected", 15, call_id=call)
        finally:
            for task in agents:
                task.cancel()
            await asyncio.gather(*agents, return_exceptions=True)
    await bed.ended_calls(EXTENSIONS["st"], 10)
    today = await eventually(lambda: _today(bed, "st", 7), 10, "answered calls counted")
    assert (today["offered"], today["answered"], today["abandoned"],
            today["short_abandoned"], today["timed_out"], today["overflow"]) == (
        10, 7, 1, 1, 1, 0)
    assert today["answered_within_sl"] == 7
    assert today["service_level"] == pytest.approx(7 / 9)
    assert 0 <= today["asa_s"] < 3
    assert today["aht_s"] is not None and today["aht_s"] >= 1.0
    live = await bed.queue("st")
    assert live["waiting"] == 0 and live["longest_wait_s"] == 0


async def _agent_hangs_up_calls(agent: SipPeer) -> None:
    while True:
        incoming = await agent.wait_for("incoming", 60)
        await agent.wait_for("confirmed", 10, call_id=incoming["call_id"])
        await asyncio.sleep(1.0)
        await agent.hangup(incoming["call_id"])


async def _today(bed: AcdBed, queue: str, answered: int) -> dict[str, Any] | None:
    today: dict[str, Any] = (await bed.queue(queue))["today"]
    return today if today["answered"] >= answered else None


async def test_flow_dial_step_rings_an_agent_and_bridges_and_refuses_numbers_without_trunk(
    bed: AcdBed, tmp_path: Path,
) -> None:
    heard = tmp_path / "dial-caller.wav"
    async with bed.headset("d1") as d1, bed.caller() as caller:
        await bed.set_state("d1", "available")
        call = await bed.call(caller, "dial_agent", record=heard)
        incoming = await d1.wait_for("incoming", 10)
        await d1.wait_for("confirmed", 10, call_id=incoming["call_id"])
        await bed.wait_state("d1", "on_call", timeout=5)
        await asyncio.sleep(2.0)
        await d1.hangup(incoming["call_id"])  # the far end hangs up first: `next`
        agent_end = await d1.wait_for("disconnected", 10, call_id=incoming["call_id"])
        await caller.wait_for("disconnected", 10, call_id=call)
        await bed.wait_state("d1", "wrap_up", "available", timeout=5)
        refused = await bed.call(caller, "dial_number")
        await caller.wait_for("disconnected", 10, call_id=refused)
    assert audio.has_tone(heard, AGENT_HZ)
    assert audio.has_tone(agent_end["recording"], CALLER_HZ)
    (dialed,) = await bed.ended_calls(EXTENSIONS["dial_agent"], 1)
    assert "dial_next" in dialed["tags"] and dialed["agent_id"] == "d1", dialed
    (number,) = await bed.ended_calls(EXTENSIONS["dial_number"], 1)
    assert "dial_failed" in number["tags"], number
    notes = [r.data for r in await bed.timeline(number["call_id"]) if r.kind == "dial_refused"]
    assert notes and "no trunk" in notes[0]["reason"]
    assert await bed.bridges() == []
