"""Queue statistics from the raw event log, for a scripted scenario, and live figures."""

from __future__ import annotations

from datetime import timedelta

import pytest

from callcontrol.acd.agents import AgentState
from callcontrol.acd.stats import counted, live_stats, period_stats

from .conftest import Clock, Harness, agent, queue, wait_for


async def test_scripted_ten_calls_give_exact_statistics(harness: Harness) -> None:
    clock = Clock()
    config = queue(service_level=20, short_abandon=5, wrap_up=0.01)
    acd = await harness.build([agent("a1", ["q"])], {"q": config}, clock=clock)
    board = acd.board
    start = clock.now

    async def answered(n: int, wait: float, talk: float, hold: float = 0.0) -> None:
        entry = acd.enter("q", f"c{n}", f"ch{n}", "")
        await wait_for(lambda: board.agents["a1"].state is AgentState.RINGING)
        clock.advance(wait)
        acd.answered(entry, "a1", f"ch{n}")
        clock.advance(talk)
        acd.call_ended(f"c{n}", "q", "a1", by="caller", talk_s=talk - hold, hold_s=hold)
        clock.advance(10)  # wrap-up as the log will see it (the timer is 10 ms of loop time)
        await wait_for(lambda: board.agents["a1"].state is AgentState.AVAILABLE)

    def left(n: int, wait: float, reason: str) -> None:
        entry = acd.enter("q", f"c{n}", f"ch{n}", "")
        clock.advance(wait)
        if reason == "callback":
            acd.request_callback(entry, "+4930111")
            acd.lines["q"].remove(entry)
        else:
            acd.leave(entry, reason)

    await answered(1, 5, 60)
    await answered(2, 10, 60, hold=20)
    await answered(3, 15, 60)
    board.pause("a1", "break")
    left(4, 60, "abandoned")
    left(5, 3, "abandoned")  # a short abandon
    left(6, 120, "timed_out")
    left(7, 50, "callback")
    board.unpause("a1")
    await answered(8, 25, 60)
    await answered(9, 30, 60)
    await answered(10, 40, 60)

    stats = period_stats(harness.log.records, "q", config, start, clock.now)
    assert (stats.offered, stats.answered, stats.abandoned, stats.short_abandoned,
            stats.timed_out, stats.callback_requested, stats.other_exits) == (10, 6, 1, 1, 1, 1, 0)
    assert stats.answered_within_sl == 3
    assert stats.service_level == pytest.approx(3 / 8)
    assert stats.asa_s == pytest.approx((5 + 10 + 15 + 25 + 30 + 40) / 6)
    assert stats.aht_s == pytest.approx(60 + 10)
    # A period that starts after the first three calls entered leaves them out.
    later = period_stats(harness.log.records, "q", config, start + timedelta(seconds=200),
                         clock.now)
    assert later.offered == 7 and later.answered == 3
    # TodayLog keeps only the records that count: the figures from them are the same.
    kept = [r for r in harness.log.records if counted(r)]
    assert len(kept) < len(harness.log.records) / 2
    assert period_stats(kept, "q", config, start, clock.now) == stats


async def test_live_stats_show_waiting_longest_wait_and_agents(harness: Harness) -> None:
    clock = Clock()
    acd = await harness.build([agent("a1", ["q"]), agent("a2", ["q"])], {"q": queue()},
                              clock=clock)
    acd.board.pause("a1", "break")
    acd.board.logout("a2")
    acd.enter("q", "c1", "ch1", "")
    clock.advance(30)
    acd.enter("q", "c2", "ch2", "")
    clock.advance(5)
    live = live_stats(acd)["q"]
    assert live["waiting"] == 2 and live["callbacks"] == 0
    assert live["longest_wait_s"] == 35
    assert live["agents"]["paused"] == 1 and live["agents"]["logged_out"] == 1
