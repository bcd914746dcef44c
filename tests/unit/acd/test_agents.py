"""The agent state machine: transitions, feature codes, auto-pause, deferred changes."""

from __future__ import annotations

import asyncio

import pytest

from callcontrol.acd.agents import AgentBoard, AgentState, AgentStateError
from callcontrol.store.records import AgentEvent

from .conftest import Clock, ListLog, agent, wait_for

S = AgentState


def board(log: ListLog, clock: Clock | None = None) -> AgentBoard:
    return AgentBoard([agent("a1", ["q"]), agent("a2", ["q"])], log,
                      pause_reasons=["break", "lunch", "no_answer"], clock=clock or Clock())


def test_login_pause_logout_are_logged_with_seconds() -> None:
    log, clock = ListLog(), Clock()
    b = board(log, clock)
    assert b.login("a1") is S.AVAILABLE
    clock.advance(60)
    assert b.pause("a1", "lunch") is S.PAUSED
    assert b.agents["a1"].reason == "lunch"
    clock.advance(1800)
    assert b.unpause("a1") is S.AVAILABLE
    clock.advance(30)
    assert b.logout("a1") is S.LOGGED_OUT
    events = [r.data for r in log.records if isinstance(r, AgentEvent)]
    assert [(e["from"], e["to"], e["seconds"]) for e in events] == [
        ("logged_out", "available", 0.0), ("available", "paused", 60.0),
        ("paused", "available", 1800.0), ("available", "logged_out", 30.0)]
    assert events[1]["pause_reason"] == "lunch" and events[2]["pause_reason"] == "lunch"


def test_invalid_operations_raise() -> None:
    b = board(ListLog())
    with pytest.raises(AgentStateError):
        b.logout("a1")
    with pytest.raises(AgentStateError):
        b.pause("a1", "break")
    b.login("a1")
    with pytest.raises(AgentStateError):
        b.pause("a1", "coffee")
    with pytest.raises(AgentStateError):
        b.unpause("a1")
    with pytest.raises(AgentStateError):
        b.login("a1")
    with pytest.raises(AgentStateError):
        b.get("nobody")


def test_feature_codes_toggle_login_and_pause() -> None:
    b = board(ListLog())
    assert b.feature_code("ep-a1", "*45") is S.AVAILABLE
    assert b.feature_code("ep-a1", "*46") is S.PAUSED
    assert b.agents["a1"].reason == "break"
    assert b.feature_code("ep-a1", "*46") is S.AVAILABLE
    assert b.feature_code("ep-a1", "*45") is S.LOGGED_OUT
    with pytest.raises(AgentStateError):
        b.feature_code("ep-a1", "*99")


def test_unregistered_headset_makes_agent_unreachable_until_back() -> None:
    b = board(ListLog())
    b.set_reachable("ep-a1", False)
    assert b.login("a1") is S.UNREACHABLE
    assert not b.agents["a1"].logged_in
    assert b.set_reachable("ep-a1", True) is S.AVAILABLE
    assert b.set_reachable("ep-a1", False) is S.UNREACHABLE


def test_no_answers_in_a_row_auto_pause() -> None:
    b = board(ListLog())
    b.login("a1")
    for expected in (S.AVAILABLE, S.AVAILABLE, S.PAUSED):
        b.offer("a1", "c1", "q")
        assert b.ring_failed("a1", max_no_answer=3) is expected
    assert b.agents["a1"].reason == "no_answer"
    b.unpause("a1")
    assert b.agents["a1"].consecutive_no_answers == 0


def test_answer_resets_no_answer_count() -> None:
    b = board(ListLog())
    b.login("a1")
    b.offer("a1", "c1", "q")
    b.ring_failed("a1", 3)
    b.offer("a1", "c2", "q")
    b.connected("a1")
    assert b.agents["a1"].consecutive_no_answers == 0
    assert b.agents["a1"].calls_answered == 1


async def test_logout_and_pause_while_busy_wait_for_the_call_end() -> None:
    log = ListLog()
    b = board(log)
    b.login("a1")
    b.offer("a1", "c1", "q")
    b.connected("a1")
    assert b.pause("a1", "lunch") is S.ON_CALL
    b.call_ended("a1", 0.0)
    assert b.agents["a1"].state is S.PAUSED and b.agents["a1"].reason == "lunch"
    b.unpause("a1")
    b.offer("a1", "c2", "q")
    assert b.logout("a1") is S.RINGING
    b.ring_cancelled("a1")
    assert b.agents["a1"].state is S.LOGGED_OUT


async def test_wrap_up_timer_returns_agent_to_available() -> None:
    log = ListLog()
    b = board(log)
    b.login("a1")
    b.offer("a1", "c1", "q")
    b.connected("a1")
    started = asyncio.get_running_loop().time()
    b.call_ended("a1", 0.2)
    assert b.agents["a1"].state is S.WRAP_UP
    await wait_for(lambda: b.agents["a1"].state is S.AVAILABLE)
    assert asyncio.get_running_loop().time() - started >= 0.19
    left = [r.data for r in log.records if isinstance(r, AgentEvent)][-1]
    assert left["from"] == "wrap_up" and left["call_id"] == "c1" and left["queue"] == "q"


async def test_shutdown_cancels_wrap_up_timers() -> None:
    b = board(ListLog())
    b.login("a1")
    b.offer("a1", "c1", "q")
    b.connected("a1")
    b.call_ended("a1", 0.05)
    b.shutdown()
    await asyncio.sleep(0.1)  # longer than the wrap-up: the cancelled timer must not fire
    assert b.agents["a1"].state is S.WRAP_UP


def test_transition_table_refuses_unlisted_moves() -> None:
    b = board(ListLog())
    with pytest.raises(AgentStateError):
        b.offer("a1", "c1", "q")  # logged out agents are never offered
    b.login("a1")
    b.pause("a1", "break")
    with pytest.raises(AgentStateError):
        b.offer("a1", "c1", "q")
