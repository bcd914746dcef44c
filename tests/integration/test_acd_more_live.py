"""More of the ACD on real Asterisk (issue 4): blind transfer and hold through the HTTP API,
the round_robin, fewest_calls and random strategies, position announcements and
``GET /api/queues/{name}/stats``.

Same bed as tests/integration/test_acd_live.py (tests/integration/acd_bed.py), with scenario
agents and queues of their own (``MORE_AGENTS``, ``MORE_QUEUES``). The announcement scenario
mostly waits: it runs in the background from the module's start (:func:`announcements`) while
the other scenarios run, and its tests only check what it collected.

Recordings are checked per time window: a recording ends when its call is hung up, so an
instant ``t`` (wall clock) of the call is ``duration - (hung_up_at - t)`` seconds into it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from acd_bed import (
    AGENT_HZ,
    CALLER_HZ,
    MORE_EXTENSIONS,
    RANDOM_SEED,
    AcdBed,
    Row,
    eventually,
    max_concurrent_calls,
    running_bed,
)

from callcontrol import audio
from callcontrol.sipua.client import SipPeer

pytestmark = [pytest.mark.integration, pytest.mark.postgres,
              pytest.mark.asyncio(loop_scope="module")]

MOH_NOTES = (523.25, 659.25, 783.99)
"""The notes of the test Asterisk's music on hold (callcontrol.pbx.render.write_moh_tone)."""

ANNOUNCE_EVERY = 15.0  # the "an" queue's announce_position


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bed(tmp_path_factory: pytest.TempPathFactory, module_db_url: str
              ) -> AsyncIterator[AcdBed]:
    async with running_bed(tmp_path_factory.mktemp("acd-more"),
                           f"acd-more-{os.getpid()}", module_db_url) as running:
        yield running


# -- helpers ----------------------------------------------------------------------------------


async def connected_agents(bed: AcdBed, queue: str, count: int, timeout: float = 20
                           ) -> list[str]:
    """The agents of the first ``count`` (at least) ``agent_connected`` events of ``queue``."""

    async def check() -> list[str] | None:
        rows = await bed.call_events("agent_connected", queue)
        return [r.data["agent_id"] for r in rows] if len(rows) >= count else None

    result: list[str] = await eventually(check, timeout, f"{count} connections in {queue}")
    return result


async def entered(bed: AcdBed, queue: str, count: int) -> list[Row]:
    """Wait until ``count`` callers entered ``queue``; their ``queue_entered`` rows."""

    async def check() -> list[Row] | None:
        rows = await bed.call_events("queue_entered", queue)
        return rows if len(rows) >= count else None

    result: list[Row] = await eventually(check, 10, f"{count} callers in {queue}")
    return result


async def answer_from(bed: AcdBed, headset: SipPeer, agent_id: str) -> str:
    """The headset's next incoming call, answered and bridged (the agent ``on_call``)."""
    incoming = await headset.wait_for("incoming", 10)
    await headset.wait_for("confirmed", 10, call_id=incoming["call_id"])
    await bed.wait_state(agent_id, "on_call", timeout=5)
    return str(incoming["call_id"])


def at_in(recording: str | Path, hung_up_at: float, when: float) -> float:
    """Seconds into ``recording`` (ended at wall clock ``hung_up_at``) of wall clock ``when``."""
    return audio.duration(recording) - (hung_up_at - when)


def seconds_of(recording: str | Path, freqs: Sequence[float], start: float, end: float) -> float:
    """Seconds of ``[start, end)`` of the recording in which one of ``freqs`` is heard."""
    return sum(audio.tone_seconds_between(recording, f, start, end) for f in freqs)


def speech_windows(recording: str | Path, start: float, end: float) -> list[float]:
    """Starts of the non-silent windows of ``[start, end)`` that are neither music on hold nor
    a party's tone: the spoken prompts."""
    known = (*MOH_NOTES, CALLER_HZ, AGENT_HZ)
    shares: dict[float, float] = {}
    for freq in known:
        for at, _, share in audio.tone_windows(recording, freq, start, end):
            shares[at] = max(shares.get(at, 0.0), share)
    return sorted(at for at, share in shares.items() if share < 0.2)


async def api_ok(bed: AcdBed, method: str, path: str, body: Any = None) -> Any:
    """One API request that must succeed."""
    status, answer = await bed.api(method, path, body)
    assert status == 200, (path, answer)
    return answer


# -- (1) blind transfer through the API -------------------------------------------------------


async def test_blind_transfer_to_another_queue_and_to_another_agent(
    bed: AcdBed, tmp_path: Path,
) -> None:
    for agent_id in ("x1", "x2", "x3", "x4"):
        await bed.set_state(agent_id, "logged_out")

    async def to_queue() -> tuple[float, float]:
        async with bed.headset("x1") as x1, bed.headset("x2") as x2, bed.caller() as caller:
            await bed.set_state("x1", "available")
            await bed.set_state("x2", "available")
            call = await bed.call(caller, "xa", record=tmp_path / "to-queue.wav")
            first = await answer_from(bed, x1, "x1")
            await asyncio.sleep(1.0)
            await api_ok(bed, "POST", "/api/agents/x1/transfer", {"to": "queue:xb"})
            await x1.wait_for("disconnected", 10, call_id=first)
            second = await answer_from(bed, x2, "x2")
            await asyncio.sleep(2.0)
            await caller.hangup(call)
            heard = await caller.wait_for("disconnected", 10, call_id=call)
            x2_heard = await x2.wait_for("disconnected", 10, call_id=second)
            await bed.wait_state("x1", "available", timeout=5)
            assert len(x1.events("incoming")) == 1  # never rung again for that caller
        return (audio.tone_seconds(heard["recording"], AGENT_HZ),
                audio.tone_seconds(x2_heard["recording"], CALLER_HZ))

    async def to_agent() -> tuple[float, float]:
        async with bed.headset("x4") as x4, bed.headset("x3") as x3, bed.caller() as caller:
            await bed.set_state("x4", "available")
            await bed.set_state("x3", "available")
            call = await bed.call(caller, "xc", record=tmp_path / "to-agent.wav")
            first = await answer_from(bed, x4, "x4")
            await asyncio.sleep(1.0)
            await api_ok(bed, "POST", "/api/agents/x4/transfer", {"to": "agent:x3"})
            await x4.wait_for("disconnected", 10, call_id=first)
            second = await answer_from(bed, x3, "x3")
            await asyncio.sleep(2.0)
            await x3.hangup(second)  # the far end hangs up first: the flow's `after` exit
            x3_heard = await x3.wait_for("disconnected", 10, call_id=second)
            heard = await caller.wait_for("disconnected", 10, call_id=call)
            await bed.wait_state("x4", "available", timeout=5)
            await bed.wait_state("x3", "available", timeout=5)
        return (audio.tone_seconds(heard["recording"], AGENT_HZ),
                audio.tone_seconds(x3_heard["recording"], CALLER_HZ))

    (q_heard, x2_heard), (a_heard, x3_heard) = await asyncio.gather(to_queue(), to_agent())
    # The caller heard an agent before and after the transfer; the final agent heard the caller.
    assert q_heard >= 2.0 and a_heard >= 2.0, (q_heard, a_heard)
    assert x2_heard >= 1.0 and x3_heard >= 1.0, (x2_heard, x3_heard)

    (row,) = await bed.ended_calls(MORE_EXTENSIONS["xa"], 1)
    assert (row["outcome"], row["queue"], row["agent_id"]) == ("completed", "xb", "x2"), row
    steps = [(r.kind, r.data.get("queue"), r.data.get("agent_id"), r.data.get("target"),
              r.data.get("by")) for r in await bed.timeline(row["call_id"])
             if r.kind in ("queue_entered", "agent_connected", "transferred",
                           "agent_disconnected")]
    assert steps == [
        ("queue_entered", "xa", None, None, None),
        ("agent_connected", "xa", "x1", None, None),
        ("transferred", None, "x1", "queue:xb", None),
        ("agent_disconnected", "xa", "x1", None, "transfer"),
        ("queue_entered", "xb", None, None, None),
        ("agent_connected", "xb", "x2", None, None),
        ("agent_disconnected", "xb", "x2", None, "caller"),
    ], steps

    (row,) = await bed.ended_calls(MORE_EXTENSIONS["xc"], 1)
    assert row["agent_id"] == "x3" and "exit_after" in row["tags"], row
    steps = [(r.kind, r.data.get("agent_id"), r.data.get("target") or r.data.get("to"),
              r.data.get("by") or r.data.get("status"))
             for r in await bed.timeline(row["call_id"])
             if r.kind in ("agent_connected", "transferred", "agent_disconnected",
                           "dial_started", "dial_answered", "dial_ended")]
    assert steps == [
        ("agent_connected", "x4", None, None),
        ("transferred", "x4", "agent:x3", None),
        ("agent_disconnected", "x4", None, "transfer"),
        ("dial_started", None, "agent:x3", None),
        ("dial_answered", None, "agent:x3", None),
        ("dial_ended", None, "agent:x3", "next"),
    ], steps

    # The transferring agents went to wrap-up (their 2 s override), then back to available.
    for agent_id in ("x1", "x4"):
        moves = [(s.data["from"], s.data["to"], s.data["reason"])
                 for s in await bed.agent_states(agent_id) if s.data["to"] != "unreachable"]
        assert moves[-3:] == [("ringing", "on_call", "answered"),
                              ("on_call", "wrap_up", "call_ended"),
                              ("wrap_up", "available", "wrap_up_ended")], (agent_id, moves)
        wrap = [s for s in await bed.agent_states(agent_id) if s.data["from"] == "wrap_up"][-1]
        assert 1.9 <= wrap.data["seconds"] <= 3.0, wrap
    moves = [(s.data["from"], s.data["to"]) for s in await bed.agent_states("x3")
             if s.data["to"] != "unreachable"]
    assert moves[-4:] == [("available", "ringing"), ("ringing", "on_call"),
                          ("on_call", "wrap_up"), ("wrap_up", "available")], moves

    status, body = await bed.api("POST", "/api/agents/x1/transfer", {"to": "queue:xb"})
    assert (status, body["error"]["id"]) == (409, "agent_not_on_call"), body
    status, body = await bed.api("POST", "/api/agents/x1/transfer", {"to": "queue:nope"})
    assert status == 400, body
    assert await bed.bridges() == []


# -- (1b) the toll-fraud guard ------------------------------------------------------------------


async def test_agent_transfer_to_a_number_outside_its_allowlist_gets_403_and_the_call_goes_on(
    bed: AcdBed,
) -> None:
    """An agent token (o1) may transfer its caller to +3906... only (acd_bed.OUTBOUND_ALLOW):
    +881... (a satellite number, toll fraud's favourite) is refused with 403 and nothing moves;
    an allowed number passes the guard and reaches the dial (which the bed's missing trunk
    refuses)."""
    await bed.set_state("o1", "logged_out")
    as_agent = bed.api_as(bed.agent_tokens["o1"])
    async with bed.headset("o1") as o1, bed.caller() as caller:
        await bed.set_state("o1", "available")
        call = await bed.call(caller, "ob")
        leg = await answer_from(bed, o1, "o1")
        status, body = await as_agent("POST", "/api/agents/o1/transfer",
                                      {"to": "number:+881612345678"})
        assert (status, body["error"]["id"]) == (403, "outbound_not_allowed"), body
        assert body["error"]["details"]["role"] == "agent", body
        # an admin token has no pattern of its own for +881 either
        status, body = await bed.api("POST", "/api/agents/o1/transfer",
                                     {"to": "number:+881612345678"})
        assert (status, body["error"]["id"]) == (403, "outbound_not_allowed"), body
        # nothing moved: the agent still talks with the caller, both legs up
        assert (await bed.agent("o1"))["state"] == "on_call"
        assert not caller.events("disconnected") and not o1.events("disconnected")

        status, body = await as_agent("POST", "/api/agents/o1/transfer",
                                      {"to": "number:+390612345678"})
        assert status == 200, body
        await o1.wait_for("disconnected", 10, call_id=leg)
        await caller.wait_for("disconnected", 15, call_id=call)

    (row,) = await bed.ended_calls(MORE_EXTENSIONS["ob"], 1)
    timeline = await bed.timeline(row["call_id"])
    moves = [(r.kind, r.data.get("target") or r.data.get("to"), r.data.get("reason"))
             for r in timeline if r.kind in ("transferred", "dial_refused", "dial_started")]
    assert moves == [("transferred", "number:+390612345678", None),
                     ("dial_refused", "number:+390612345678", "no trunk configured")], moves
    assert "+881" not in json.dumps([r.data for r in timeline])


# -- (2) hold / unhold --------------------------------------------------------------------------


async def test_hold_plays_music_to_the_caller_and_mutes_it_for_the_agent(
    bed: AcdBed, tmp_path: Path,
) -> None:
    heard = tmp_path / "held-caller.wav"
    status, body = await bed.api("POST", "/api/agents/k1/hold")
    assert (status, body["error"]["id"]) == (409, "agent_not_on_call"), body
    async with bed.headset("k1") as k1, bed.caller() as caller:
        await bed.set_state("k1", "available")
        call = await bed.call(caller, "ho", record=heard)
        leg = await answer_from(bed, k1, "k1")
        talking = time.time()
        await asyncio.sleep(2.5)
        held = time.time()
        await api_ok(bed, "POST", "/api/agents/k1/hold")
        await asyncio.sleep(3.0)
        assert (await bed.agent("k1"))["state"] == "on_call"
        unheld = time.time()
        await api_ok(bed, "POST", "/api/agents/k1/unhold")
        await asyncio.sleep(2.5)
        hung_up = time.time()
        await caller.hangup(call)
        await caller.wait_for("disconnected", 10, call_id=call)
        agent_end = await k1.wait_for("disconnected", 10, call_id=leg)
    agent_heard = agent_end["recording"]

    def windows(recording: str | Path) -> list[tuple[float, float]]:
        """Before, during and after the hold, 0.6 s off each change."""
        return [(at_in(recording, hung_up, a) + 0.6, at_in(recording, hung_up, b) - 0.3)
                for a, b in ((talking, held), (held, unheld), (unheld, hung_up))]

    caller_agent = [audio.tone_seconds_between(heard, AGENT_HZ, a, b) for a, b in windows(heard)]
    caller_moh = [seconds_of(heard, MOH_NOTES, a, b) for a, b in windows(heard)]
    agent_caller = [audio.tone_seconds_between(agent_heard, CALLER_HZ, a, b)
                    for a, b in windows(agent_heard)]
    agent_moh = [seconds_of(agent_heard, MOH_NOTES, a, b) for a, b in windows(agent_heard)]
    # Talking: each hears the other; on hold: the caller hears music only, the agent nothing.
    assert caller_agent[0] >= 1.2 and caller_agent[1] <= 0.2 and caller_agent[2] >= 1.2, \
        caller_agent
    assert caller_moh[0] <= 0.2 and caller_moh[1] >= 1.2 and caller_moh[2] <= 0.2, caller_moh
    assert agent_caller[0] >= 1.2 and agent_caller[1] <= 0.2 and agent_caller[2] >= 1.2, \
        agent_caller
    assert max(agent_moh) <= 0.2, agent_moh

    (row,) = await bed.ended_calls(MORE_EXTENSIONS["ho"], 1)
    timeline = await bed.timeline(row["call_id"])
    assert [(r.kind, r.data["agent_id"]) for r in timeline if r.kind in ("hold", "unhold")] == [
        ("hold", "k1"), ("unhold", "k1")]
    (ended,) = [r for r in timeline if r.kind == "agent_disconnected"]
    assert 2.7 <= ended.data["hold_s"] <= 3.5, ended.data
    assert 4.5 <= ended.data["talk_s"] <= 6.0, ended.data  # the 5 s talked, hold apart


# -- (3) strategies -----------------------------------------------------------------------------


async def serve_one(bed: AcdBed, caller: SipPeer, queue: str, free: Sequence[str],
                    served: int) -> None:
    """One call of a strategy scenario: once every agent in ``free`` is available, call
    ``queue``, wait for its ``served + 1``-th connection, talk briefly and hang up."""
    for agent_id in free:
        await bed.wait_state(agent_id, "available")
    call = await bed.call(caller, queue)
    await connected_agents(bed, queue, served + 1)
    await asyncio.sleep(0.3)
    await caller.hangup(call)
    await caller.wait_for("disconnected", 10, call_id=call)


async def agents_hang_up(headset: SipPeer, after: float) -> None:
    """The headset hangs up each call it answers from now on ``after`` seconds later (until
    cancelled)."""
    earlier = {e["call_id"] for e in headset.events("incoming")}
    while True:
        incoming = await headset.wait_for("incoming", 60)
        if incoming["call_id"] in earlier:
            continue
        await headset.wait_for("confirmed", 10, call_id=incoming["call_id"])
        await asyncio.sleep(after)
        await headset.hangup(incoming["call_id"])


async def test_round_robin_fewest_calls_and_random_pick_the_agents_they_should(
    bed: AcdBed,
) -> None:
    g, w, z = ("g1", "g2", "g3"), ("w1", "w2", "w3"), ("z1", "z2", "z3")
    for agent_id in (*g, *w, *z):
        await bed.set_state(agent_id, "logged_out")

    async def round_robin() -> None:
        async with bed.headset("g1"), bed.headset("g2"), bed.headset("g3"), \
                bed.caller() as caller:
            for agent_id in ("g3", "g2", "g1"):  # g3 idle longest: longest_idle would pick it
                await bed.set_state(agent_id, "available")
            for served in range(4):
                await serve_one(bed, caller, "rr", g, served)
            await bed.action("g2", "pause", "break")  # skipped while paused
            await serve_one(bed, caller, "rr", ("g1", "g3"), 4)
            await bed.action("g2", "unpause")
            for served in (5, 6):
                await serve_one(bed, caller, "rr", g, served)

    async def fewest_calls() -> None:
        async with bed.headset("w1"), bed.headset("w2"), bed.headset("w3"), \
                bed.caller() as caller:
            await bed.set_state("w1", "available")
            for served in (0, 1):  # w1 alone answers two calls ...
                await serve_one(bed, caller, "fc", ("w1",), served)
            for agent_id in ("w2", "w3"):  # ... and is idle longest when w2 and w3 log in
                await bed.set_state(agent_id, "available")
            for served in range(2, 7):
                await serve_one(bed, caller, "fc", w, served)

    async def random_order() -> list[int]:
        async with bed.headset("z1") as z1, bed.headset("z2") as z2, \
                bed.headset("z3") as z3, bed.caller() as caller:
            for agent_id in z:
                await bed.set_state(agent_id, "available")
            for served in range(6):
                await serve_one(bed, caller, "rnd", z, served)
            # A burst: four callers at once for three agents that talk a second each.
            for agent_id in z:
                await bed.wait_state(agent_id, "available")
            headsets = (z1, z2, z3)
            hangups = [asyncio.create_task(agents_hang_up(h, 1.0)) for h in headsets]
            try:
                calls = [await bed.call(caller, "rnd") for _ in range(4)]
                for call in calls:
                    await caller.wait_for("disconnected", 20, call_id=call)
            finally:
                for task in hangups:
                    task.cancel()
                await asyncio.gather(*hangups, return_exceptions=True)
            return [max_concurrent_calls(h.events()) for h in headsets]

    _, _, most_at_once = await asyncio.gather(round_robin(), fewest_calls(), random_order())

    assert await connected_agents(bed, "rr", 7) == ["g1", "g2", "g3", "g1", "g3", "g1", "g2"]
    offered = [r.data["agent_id"] for r in await bed.call_events("agent_offered", "rr")]
    assert offered == ["g1", "g2", "g3", "g1", "g3", "g1", "g2"]  # nobody skipped by a ring

    assert await connected_agents(bed, "fc", 7) == ["w1", "w1", "w2", "w3", "w2", "w3", "w1"]
    answered = {a: (await bed.agent(a))["calls_answered"] for a in w}
    assert answered == {"w1": 3, "w2": 2, "w3": 2}

    rng = random.Random(RANDOM_SEED)  # the daemon's generator, replayed: same seed, same picks
    expected = []
    for _ in range(6):
        candidates = list(z)
        rng.shuffle(candidates)
        expected.append(candidates[0])
    picks = (await connected_agents(bed, "rnd", 10))[:6]
    assert picks == expected and set(picks) == set(z), (picks, expected)
    assert most_at_once == [1, 1, 1], most_at_once  # never rung twice at once
    burst = (await connected_agents(bed, "rnd", 10))[6:]
    assert len(burst) == 4 and set(burst) == set(z), burst
    for queue in ("rr", "fc", "rnd"):
        assert not await bed.call_events("agent_no_answer", queue)


# -- (4) announcements (run in the background, see the module docstring) -----------------------


@dataclass
class Announced:
    """What the announcement scenario collected."""

    recording: str  # the second caller in line
    hung_up_at: float  # wall clock
    call_id: str  # the second caller's
    entered: Row  # its queue_entered
    ahead_call_id: str  # the caller ahead of it


async def announcement_scenario(bed: AcdBed, work: Path) -> Announced:
    """One answered call after a short wait (so there is an estimate), then two callers wait
    in line for a paused agent; the one ahead hangs up after the first announcement, the second
    hears two announcements."""
    await bed.set_state("a1", "logged_out")
    async with bed.headset("a1") as a1:
        await bed.set_state("a1", "paused")
        async with bed.caller() as first:
            call = await bed.call(first, "an")
            await entered(bed, "an", 1)
            await asyncio.sleep(1.0)
            await bed.action("a1", "unpause")
            await answer_from(bed, a1, "a1")
            await first.hangup(call)
            await first.wait_for("disconnected", 10, call_id=call)
        await bed.wait_state("a1", "available")
        await bed.action("a1", "pause", "break")
        recording = work / "second-in-line.wav"
        async with bed.caller() as ahead, bed.caller() as waiting:
            ahead_call = await bed.call(ahead, "an")
            (*_, ahead_row) = await entered(bed, "an", 2)
            waiting_call = await bed.call(waiting, "an", record=recording)
            (*_, waiting_row) = await entered(bed, "an", 3)
            await announced(bed, waiting_row.owner, 1, ANNOUNCE_EVERY + 5)
            await ahead.hangup(ahead_call)
            await ahead.wait_for("disconnected", 10, call_id=ahead_call)
            await announced(bed, waiting_row.owner, 2, ANNOUNCE_EVERY + 5)
            await asyncio.sleep(7.0)  # the second announcement plays out
            hung_up_at = time.time()
            await waiting.hangup(waiting_call)
            ended = await waiting.wait_for("disconnected", 10, call_id=waiting_call)
    return Announced(ended["recording"], hung_up_at, waiting_row.owner, waiting_row,
                     ahead_row.owner)


async def announced(bed: AcdBed, call_id: str, count: int, timeout: float) -> list[Row]:
    """Wait until the call had ``count`` ``queue_announced`` events; return them."""

    async def check() -> list[Row] | None:
        rows = [r for r in await bed.timeline(call_id) if r.kind == "queue_announced"]
        return rows if len(rows) >= count else None

    result: list[Row] = await eventually(check, timeout, f"{count} announcements")
    return result


@pytest_asyncio.fixture(scope="module", loop_scope="module", autouse=True)
async def announcements(bed: AcdBed, tmp_path_factory: pytest.TempPathFactory
                        ) -> AsyncIterator[asyncio.Task[Announced]]:
    """The announcement scenario, started with the module and awaited by its tests."""
    task = asyncio.create_task(announcement_scenario(bed, tmp_path_factory.mktemp("an")))
    yield task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_position_is_announced_at_the_interval_instead_of_the_music(
    bed: AcdBed, announcements: asyncio.Task[Announced],
) -> None:
    result = await asyncio.wait_for(asyncio.shield(announcements), 60)
    rows = await announced(bed, result.call_id, 2, 5)
    assert [r.data["position"] for r in rows] == [2, 1]
    first_wait = (rows[0].at - result.entered.at).total_seconds()
    gap = (rows[1].at - rows[0].at).total_seconds()
    assert abs(first_wait - ANNOUNCE_EVERY) <= 1.0 and abs(gap - ANNOUNCE_EVERY) <= 1.0, (
        first_wait, gap)
    ahead = [r.data["position"] for r in await bed.timeline(result.ahead_call_id)
             if r.kind == "queue_announced"]
    assert ahead == [1]
    (answered,) = [r for r in await bed.call_events("agent_connected", "an")]
    assert [r.data["estimated_wait_s"] for r in rows] == [answered.data["wait_s"]] * 2
    assert answered.data["wait_s"] >= 1.0

    recording, end = result.recording, result.hung_up_at
    one, two = (at_in(recording, end, r.at.timestamp()) for r in rows)
    # Music while waiting, the spoken prompts (and no music) at each announcement, music again.
    assert seconds_of(recording, MOH_NOTES, 1.0, one - 0.5) >= 6.0
    assert len(speech_windows(recording, 1.0, one - 0.5)) <= 3
    for start in (one, two):
        assert len(speech_windows(recording, start + 0.3, start + 4.5)) >= 20, start
        assert seconds_of(recording, MOH_NOTES, start + 0.3, start + 4.5) <= 0.5, start
    # the announcement (position, then the estimated wait) lasts about 10 s
    assert seconds_of(recording, MOH_NOTES, one + 11.0, two - 0.5) >= 2.0
    assert len(speech_windows(recording, one + 11.0, two - 0.5)) <= 3


async def test_the_estimated_wait_is_spoken_with_the_position(
    bed: AcdBed, announcements: asyncio.Task[Announced],
) -> None:
    result = await asyncio.wait_for(asyncio.shield(announcements), 60)
    rows = await announced(bed, result.call_id, 1, 5)
    assert rows[0].data["estimated_wait_s"] is not None
    start = at_in(result.recording, result.hung_up_at, rows[0].at.timestamp())
    spoken = speech_windows(result.recording, start, start + ANNOUNCE_EVERY - 0.5)
    # The position prompts last about 5.3 s; "the estimated hold time is currently" alone 2.8 s.
    assert spoken and spoken[-1] - start >= 7.0, spoken[-1] - start if spoken else None


# -- (5) GET /api/queues/{name}/stats -----------------------------------------------------------


async def test_queue_stats_api_matches_a_scripted_scenario(bed: AcdBed) -> None:
    """No agent: 1 refused. Agent paused: B abandons after 2.5 s and C times out (max_wait 4 s)
    while D finds the line full (max_length 2); A hangs up after 0.5 s (short abandon, < 1.5 s).
    Agent free: E is answered at once and held 1.5 s; F is answered after 2.5 s (beyond the
    service level of 2 s)."""
    loop = asyncio.get_running_loop()
    started = datetime.now(UTC)
    await bed.set_state("v1", "logged_out")
    async with bed.headset("v1") as v1:
        async with bed.caller() as caller:
            refused = await bed.call(caller, "sv")
            await caller.wait_for("disconnected", 10, call_id=refused)
            await bed.set_state("v1", "paused")
            b = await bed.call(caller, "sv")
            await entered(bed, "sv", 1)
            b_in = loop.time()
            c = await bed.call(caller, "sv")
            await entered(bed, "sv", 2)
            d = await bed.call(caller, "sv")
            await caller.wait_for("disconnected", 10, call_id=d)
            await asyncio.sleep(b_in + 2.5 - loop.time())
            await caller.hangup(b)
            await caller.wait_for("disconnected", 10, call_id=b)
            a = await bed.call(caller, "sv")
            await entered(bed, "sv", 3)
            await asyncio.sleep(0.5)
            await caller.hangup(a)
            await caller.wait_for("disconnected", 10, call_id=a)
            await caller.wait_for("disconnected", 10, call_id=c)

            await bed.action("v1", "unpause")
            e = await bed.call(caller, "sv")
            leg = await answer_from(bed, v1, "v1")
            await asyncio.sleep(0.5)
            await api_ok(bed, "POST", "/api/agents/v1/hold")
            await asyncio.sleep(1.5)
            await api_ok(bed, "POST", "/api/agents/v1/unhold")
            await asyncio.sleep(0.5)
            await v1.hangup(leg)
            e_talk = (await v1.wait_for("disconnected", 10, call_id=leg))["connect_seconds"]
            await caller.wait_for("disconnected", 10, call_id=e)

            await bed.wait_state("v1", "available", timeout=5)
            await bed.action("v1", "pause", "break")
            f = await bed.call(caller, "sv")
            await entered(bed, "sv", 5)
            await asyncio.sleep(2.5)
            await bed.action("v1", "unpause")
            leg = await answer_from(bed, v1, "v1")
            await asyncio.sleep(1.0)
            await caller.hangup(f)
            await caller.wait_for("disconnected", 10, call_id=f)
            f_talk = (await v1.wait_for("disconnected", 10, call_id=leg))["connect_seconds"]
        await bed.wait_state("v1", "available", timeout=5)

    async def wrap_ups() -> list[Row] | None:  # the last record of the scenario is journaled
        rows = [s for s in await bed.agent_states("v1") if s.data["from"] == "wrap_up"]
        return rows if len(rows) >= 2 else None

    await eventually(wrap_ups, 10, "both wrap-ups of v1 in the database")
    span = f"from={quote(started.isoformat())}&to={quote(datetime.now(UTC).isoformat())}"
    stats = await api_ok(bed, "GET", f"/api/queues/sv/stats?{span}")
    counts = {k: stats[k] for k in ("offered", "answered", "abandoned", "short_abandoned",
                                    "timed_out", "overflow", "no_agents", "callback_requested",
                                    "other_exits", "answered_within_sl")}
    assert counts == {"offered": 5, "answered": 2, "abandoned": 1, "short_abandoned": 1,
                      "timed_out": 1, "overflow": 1, "no_agents": 1, "callback_requested": 0,
                      "other_exits": 0, "answered_within_sl": 1}, stats
    assert stats["service_level"] == pytest.approx(1 / 4)  # 1 within / (2 + 1 abandoned + 1)
    waits = [r.data["wait_s"] for r in await bed.call_events("queue_left", "sv")
             if r.data["reason"] == "answered"]
    assert waits[0] < 2.0 < 2.5 <= waits[1] < 4.0, waits
    assert stats["asa_s"] == pytest.approx(sum(waits) / 2)
    # Handle time: the agent's connected seconds (hold included) plus the 1 s wrap-up each.
    assert stats["aht_s"] == pytest.approx((e_talk + f_talk) / 2 + 1.0, abs=0.3), (
        stats, e_talk, f_talk)

    before = quote(started.isoformat())
    empty = await api_ok(bed, "GET", f"/api/queues/sv/stats?to={before}")
    assert (empty["offered"], empty["answered"], empty["service_level"]) == (0, 0, None)
