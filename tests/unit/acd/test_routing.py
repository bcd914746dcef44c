"""Waiting lines and the router: order, strategies, skills, sharing agents between queues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callcontrol.acd.agents import AgentState
from callcontrol.acd.events import AgentOffered
from callcontrol.acd.queues import QueueFull, WaitingLine
from callcontrol.acd.router import Acd

from .conftest import Harness, agent, queue, wait_for

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def offers(h: Harness) -> list[AgentOffered]:
    return [e for e in h.switch.unrouted if isinstance(e, AgentOffered)]


def test_priority_first_then_entry_time_and_adopted_time_kept() -> None:
    line = WaitingLine("q", queue())
    a, _ = line.add("c1", "ch1", "1", T0, priority=0)
    b, _ = line.add("c2", "ch2", "2", T0 + timedelta(seconds=5), priority=10)
    adopted, _ = line.add("c3", "ch3", "3", T0 - timedelta(seconds=60))
    assert [e.call_id for e in line] == ["c2", "c3", "c1"]
    assert adopted.entered_at == T0 - timedelta(seconds=60)
    assert line.position(a) == 3 and line.position(b) == 1


def test_full_line_refuses_and_callback_keeps_place_and_merges() -> None:
    line = WaitingLine("q", queue(max_length=2))
    first, _ = line.add("c1", "ch1", "+100", T0)
    line.add("c2", "ch2", "+200", T0 + timedelta(seconds=1))
    with pytest.raises(QueueFull):
        line.add("c3", "ch3", "+300", T0 + timedelta(seconds=2))
    line.to_callback(first, "+100")
    assert line.position(first) == 1 and first.channel_id is None
    # The same number calls again: merged into the new live entry, which takes the old place.
    again, merged = line.add("c4", "ch4", "+100", T0 + timedelta(seconds=9))
    assert merged is first and len(line) == 2
    assert line.position(again) == 1 and again.entered_at == T0


async def route(h: Harness, acd: Acd, calls: int, agent_ids: list[str]) -> list[str]:
    """Enter ``calls`` callers one after the other; each is answered and hung up at once."""
    picked = []
    for n in range(calls):
        entry = acd.enter("q", f"c{n}", f"ch{n}", "", priority=0)
        await wait_for(lambda n=n: len(offers(h)) == n + 1)
        offer = offers(h)[-1]
        picked.append(offer.agent_id)
        acd.answered(entry, offer.agent_id, f"ch{n}")
        acd.call_ended(f"c{n}", "q", offer.agent_id, by="caller", talk_s=1.0)
    return picked


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("longest_idle", ["a1", "a2", "a3", "a1", "a2"]),
     ("round_robin", ["a1", "a2", "a3", "a1", "a2"]),
     ("fewest_calls", ["a1", "a2", "a3", "a1", "a2"])],
)
async def test_deterministic_strategies_over_several_calls(
    harness: Harness, strategy: str, expected: list[str]
) -> None:
    ids = ["a1", "a2", "a3"]
    acd = await harness.build([agent(i, ["q"]) for i in ids], {"q": queue(strategy=strategy)})
    assert await route(harness, acd, 5, ids) == expected


async def test_fewest_calls_prefers_the_agent_with_fewer_answers(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["q"]), agent("a2", ["q"])],
                              {"q": queue(strategy="fewest_calls")})
    acd.board.agents["a1"].calls_answered = 5
    acd.board.agents["a2"].idle_since = datetime.now(UTC)  # idle for less time, fewer calls
    assert await route(harness, acd, 1, ["a1", "a2"]) == ["a2"]


async def test_longest_idle_follows_idle_time_not_config_order(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["q"]), agent("a2", ["q"])],
                              {"q": queue(strategy="longest_idle")})
    acd.board.agents["a2"].idle_since = datetime.now(UTC) - timedelta(hours=1)
    assert await route(harness, acd, 1, ["a1", "a2"]) == ["a2"]


async def test_random_is_reproducible_with_a_seed() -> None:
    runs = []
    for _ in range(2):
        h = Harness()
        acd = await h.build([agent(i, ["q"]) for i in ("a1", "a2", "a3", "a4")],
                            {"q": queue(strategy="random")}, seed=7)
        runs.append(await route(h, acd, 8, []))
        await acd.stop()
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1


async def test_skills_beat_idle_time(harness: Harness) -> None:
    acd = await harness.build(
        [agent("idle", ["q"], skills={"fr": 1}), agent("expert", ["q"], skills={"fr": 5}),
         agent("no_fr", ["q"])],
        {"q": queue(strategy="skills")})
    acd.board.agents["idle"].idle_since = datetime.now(UTC) - timedelta(hours=2)
    acd.board.agents["no_fr"].idle_since = datetime.now(UTC) - timedelta(hours=3)
    acd.enter("q", "c1", "ch1", "", skills={"fr": 3})
    await wait_for(lambda: len(offers(harness)) == 1)
    assert offers(harness)[0].agent_id == "expert"
    acd.enter("q", "c2", "ch2", "", skills={"fr": 1})
    await wait_for(lambda: len(offers(harness)) == 2)
    assert offers(harness)[1].agent_id == "idle"  # the only free one with the skill


async def test_priority_caller_jumps_ahead(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["q"])], {"q": queue()})
    acd.board.pause("a1", "break")
    acd.enter("q", "early", "ch-early", "")
    acd.enter("q", "vip", "ch-vip", "", priority=10)
    acd.board.unpause("a1")
    await wait_for(lambda: len(offers(harness)) == 1)
    assert offers(harness)[0].channel_id == "ch-vip"


async def test_two_queues_sharing_an_agent_never_ring_it_twice(harness: Harness) -> None:
    acd = await harness.build([agent("a1", ["billing", "support"])],
                              {"billing": queue(), "support": queue()})
    acd.enter("billing", "c1", "ch1", "")
    acd.enter("support", "c2", "ch2", "")
    await wait_for(lambda: len(offers(harness)) == 1)
    for _ in range(5):  # let the router run again: no second offer while a1 rings
        acd.wake()
        await wait_for(lambda: not acd._wake.is_set())
    assert len(offers(harness)) == 1
    assert acd.board.agents["a1"].state is AgentState.RINGING


async def test_paused_logged_out_and_unreachable_agents_are_never_offered(
    harness: Harness,
) -> None:
    acd = await harness.build(
        [agent("paused", ["q"]), agent("out", ["q"]), agent("gone", ["q"]), agent("ok", ["q"])],
        {"q": queue()})
    acd.board.pause("paused", "break")
    acd.board.logout("out")
    acd.board.set_reachable("ep-gone", False)
    for n in range(3):
        entry = acd.enter("q", f"c{n}", f"ch{n}", "")
        await wait_for(lambda n=n: len(offers(harness)) == n + 1)
        acd.ring_failed(entry, offers(harness)[-1].agent_id)
        acd.leave(entry, "abandoned")
    assert {o.agent_id for o in offers(harness)} == {"ok"}


async def test_free_agent_index_follows_transitions_and_roster_changes(
    harness: Harness,
) -> None:
    """The router picks from an index of free agents per queue: it must hold exactly the
    available members through every kind of change (state, queues, roster)."""
    acd = await harness.build([agent("a1", ["q", "r"]), agent("a2", ["q"])],
                              {"q": queue(), "r": queue()})

    def free() -> dict[str, set[str]]:
        index = {name: set(ids) for name, ids in acd._free.items()}
        scan = {name: {a for a in members
                       if acd.board.agents[a].state is AgentState.AVAILABLE}
                for name, members in acd.members.items()}
        assert index == scan
        return index

    assert free() == {"q": {"a1", "a2"}, "r": {"a1"}}
    acd.board.pause("a1", "break")
    assert free() == {"q": {"a2"}, "r": set()}
    acd.board.unpause("a1")
    acd.update_agent(agent("a1", ["r"]))  # leaves q while available
    assert free() == {"q": {"a2"}, "r": {"a1"}}
    acd.add_agent(agent("a3", ["q"]), reachable=True)
    acd.board.login("a3")
    assert free() == {"q": {"a2", "a3"}, "r": {"a1"}}
    entry = acd.enter("q", "c1", "ch1", "")
    await wait_for(lambda: len(offers(harness)) == 1)
    assert free()["q"] == {"a2", "a3"} - {offers(harness)[0].agent_id}
    acd.ring_failed(entry, offers(harness)[0].agent_id)
    acd.leave(entry, "abandoned")
    acd.board.logout("a3")
    acd.remove_agent("a3")
    acd.board.set_reachable("ep-a2", False)
    assert free() == {"q": set(), "r": {"a1"}}
