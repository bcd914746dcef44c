"""Dispositions: a required one holds wrap-up until given or ``wrap_up_max`` (then
``missing``); the checks of a code and its note; the headset code."""

from __future__ import annotations

import asyncio

import pytest

from callcontrol.acd.agents import AgentBoard, AgentState
from callcontrol.acd.dispositions import Dispositions
from callcontrol.config import AcdConfig, DispositionsConfig, QueueConfig
from callcontrol.errors import Forbidden, InvalidRequest, WrongState
from callcontrol.store.records import CallUpdated

from .conftest import Clock, ListLog, agent, wait_for

S = AgentState
CODES = [{"code": "1", "label": "Resolved"},
         {"code": "2", "label": "Escalated", "requires_note": True}]


def setup(required: bool = True, wrap_up_max: float = 0.3
          ) -> tuple[AgentBoard, Dispositions, ListLog]:
    log = ListLog()
    board = AgentBoard([agent("a1", ["q"]), agent("a2", ["q"])], log, clock=Clock())
    queues = {"q": QueueConfig(wrap_up=0.0, dispositions=DispositionsConfig.model_validate(
        {"required": required, "wrap_up_max": wrap_up_max, "codes": CODES})),
              "plain": QueueConfig()}
    return board, Dispositions(board, queues, log, Clock()), log


def on_call(board: AgentBoard, agent_id: str = "a1", call_id: str = "c1",
            queue: str = "q") -> None:
    board.login(agent_id)
    board.offer(agent_id, call_id, queue)
    board.connected(agent_id)


def dispositions(log: ListLog) -> list[dict[str, object]]:
    return [r.fields for r in log.records if isinstance(r, CallUpdated)]


async def test_a_required_disposition_holds_wrap_up_past_its_time_until_given() -> None:
    board, codes, log = setup(wrap_up_max=30)
    on_call(board)
    board.call_ended("a1", 0.05, disposition_max=30)
    await asyncio.sleep(0.15)  # three times the wrap-up: the hold must keep the agent
    assert board.agents["a1"].state is S.WRAP_UP and board.agents["a1"].awaiting_disposition
    assert board.pause("a1", "break") is S.WRAP_UP  # waits for the disposition too
    answer = codes.give("c1", "1", None, by="supervisor:ops")
    assert answer["label"] == "Resolved" and answer["by"] == "supervisor:ops"
    assert board.agents["a1"].state is S.PAUSED  # the pending pause applied at once
    assert dispositions(log) == [{"disposition": "1", "disposition_label": "Resolved",
                                  "disposition_note": None, "disposition_by": "supervisor:ops",
                                  "disposition_at": dispositions(log)[0]["disposition_at"]}]
    assert [s[2] for s in log.states("a1")][-1] == "disposition_given"


async def test_a_disposition_given_early_ends_wrap_up_with_its_timer() -> None:
    board, codes, _ = setup(wrap_up_max=30)
    on_call(board)
    board.call_ended("a1", 0.2, disposition_max=30)
    codes.give("c1", "1", None, by="agent:a1", as_agent="a1")
    assert board.agents["a1"].state is S.WRAP_UP and not board.agents["a1"].awaiting_disposition
    await wait_for(lambda: board.agents["a1"].state is S.AVAILABLE)


async def test_wrap_up_max_records_missing_and_frees_the_agent() -> None:
    board, _, log = setup(wrap_up_max=0.1)
    on_call(board)
    board.call_ended("a1", 0.0, disposition_max=0.1)
    assert board.agents["a1"].state is S.WRAP_UP
    await wait_for(lambda: board.agents["a1"].state is S.AVAILABLE)
    assert dispositions(log)[0]["disposition"] == "missing"
    assert dispositions(log)[0]["disposition_by"] == "system"
    assert [r.kind for r in log.calls("disposition_missing")] == ["disposition_missing"]
    assert [s[2] for s in log.states("a1")][-1] == "disposition_missing"


async def test_refusals_name_their_reason() -> None:
    board, codes, log = setup(wrap_up_max=30)
    with pytest.raises(WrongState, match="wrapping up") as caught:
        codes.give("c1", "1", None, by="x")
    assert caught.value.error_id == "not_in_wrap_up"
    on_call(board)
    board.call_ended("a1", 0.0, disposition_max=30)
    with pytest.raises(Forbidden):
        codes.give("c1", "1", None, by="agent:a2", as_agent="a2")
    with pytest.raises(InvalidRequest) as bad:
        codes.give("c1", "7", None, by="x")
    assert bad.value.error_id == "invalid_disposition" and bad.value.details == {
        "allowed": ["1", "2"]}
    with pytest.raises(InvalidRequest) as note:
        codes.give("c1", "2", "   ", by="x")
    assert note.value.error_id == "note_required"
    with pytest.raises(InvalidRequest, match="longer"):
        codes.give("c1", "2", "x" * 1001, by="x")
    assert dispositions(log) == []
    codes.give("c1", "2", " called back ", by="x")
    assert dispositions(log)[0]["disposition_note"] == "called back"
    board.shutdown()


async def test_a_queue_without_codes_takes_none() -> None:
    board, codes, _ = setup()
    on_call(board, queue="plain")
    board.call_ended("a1", 5.0)
    with pytest.raises(WrongState) as caught:
        codes.give("c1", "1", None, by="x")
    assert caught.value.error_id == "no_dispositions"
    board.shutdown()


async def test_the_headset_code_gives_a_disposition_but_not_one_that_needs_a_note() -> None:
    from callcontrol.acd.agents import AgentStateError
    board, codes, log = setup(wrap_up_max=30)
    with pytest.raises(AgentStateError, match="not in wrap-up"):
        codes.from_headset("ep-a1", "1")
    on_call(board)
    board.call_ended("a1", 0.0, disposition_max=30)
    with pytest.raises(AgentStateError, match="needs a note"):
        codes.from_headset("ep-a1", "2")
    assert codes.from_headset("ep-a1", "1") is S.AVAILABLE
    assert dispositions(log)[0]["disposition_by"] == "agent:a1"


def test_the_acd_routes_star_48_digits_to_dispositions_and_the_rest_to_the_board() -> None:
    from callcontrol.acd.agents import AgentStateError
    from callcontrol.acd.router import Acd
    def no_service_call(*call: object) -> None:
        raise AssertionError(f"a feature code started a service call: {call}")

    acd = Acd([agent("a1", ["q"])], {"q": QueueConfig()}, log=ListLog(), post=lambda e: None,
              services=no_service_call, settings=AcdConfig())
    assert acd.feature_code("ep-a1", "*45") is S.AVAILABLE
    with pytest.raises(AgentStateError, match="not in wrap-up"):
        acd.feature_code("ep-a1", "*481")
    with pytest.raises(AgentStateError, match="unknown feature code"):
        acd.feature_code("ep-a1", "*48x")
