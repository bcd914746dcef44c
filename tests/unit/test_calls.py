"""Call sessions: every call ends with one final row, whatever happens inside."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from callcontrol.calls.context import CallerHungUp, caller_info, play_and_wait
from callcontrol.calls.manager import CallManager
from callcontrol.calls.router import EventRouter
from callcontrol.calls.session import TRANSITIONS, CallSession, CallState, CallStateError
from callcontrol.errors import PbxUnreachable
from callcontrol.fake_telephony import FakeTelephony
from callcontrol.store.records import CallClosed, CallEvent, CallOpened, Outcome, Record
from callcontrol.telephony import ChannelEntered, ChannelHungUp, PlaybackFinished


class MemoryLog:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> None:
        self.records.append(record)

    def of(self, kind: type[Record]) -> list[Record]:
        return [r for r in self.records if isinstance(r, kind)]

    def closed(self) -> list[CallClosed]:
        return [r for r in self.records if isinstance(r, CallClosed)]


def entered(channel_id: str = "ch1") -> ChannelEntered:
    return ChannelEntered(channel_id=channel_id, args=("inbound", "sip-call-1"),
                          caller_number="+390612345", extension="100", sip_call_id="sip-call-1")


Runner = Callable[[CallSession], Awaitable[Outcome]]


def start_call(
    tel: FakeTelephony, log: MemoryLog, router: EventRouter, runner: Runner, **options: float
) -> tuple[CallManager, CallSession]:
    """A manager on these fakes running ``runner``, and the session of the call it started."""
    manager = CallManager(tel, log, router, runner, **options)
    session = manager.start_inbound(entered())
    assert session is not None
    return manager, session


async def aborted(runner: Runner, started: asyncio.Event, outcome: Outcome,
                  reason: str) -> list[CallClosed]:
    """Abort a call once its runner set ``started``; the final rows written for it."""
    log = MemoryLog()
    manager, session = start_call(FakeTelephony(), log, EventRouter(), runner)
    await asyncio.wait_for(started.wait(), 5)
    manager.abort(session, outcome, reason)
    await asyncio.wait_for(manager._tasks[session.call_id], 5)
    return log.closed()


async def run_one(runner, events=()):  # type: ignore[no-untyped-def]
    tel = FakeTelephony()
    log = MemoryLog()
    router = EventRouter()
    manager, session = start_call(tel, log, router, runner, call_max_seconds=2.0)
    for event in events:
        router.post(event)
    await asyncio.wait_for(manager._tasks[session.call_id], 5)
    return tel, log, router, session


async def test_normal_call_is_opened_answered_and_closed() -> None:
    async def runner(ctx: CallSession) -> Outcome:
        await play_and_wait(ctx, ["sound:hello-world"], ctx.next_playback_id(), timeout=1.0)
        return "completed"

    tel = FakeTelephony()
    log = MemoryLog()
    router = EventRouter()

    def on_command(name: str, args: dict) -> None:  # type: ignore[type-arg]
        if name == "play":
            router.post(PlaybackFinished(channel_id=args["channel_id"],
                                         playback_id=args["playback_id"]))

    tel.on_command = on_command
    manager, session = start_call(tel, log, router, runner)
    await asyncio.wait_for(manager._tasks[session.call_id], 5)
    assert tel.names() == ["answer", "play", "hangup"]
    opened = log.of(CallOpened)[0]
    assert isinstance(opened, CallOpened) and opened.sip_call_id == "sip-call-1"
    closed = log.of(CallClosed)
    assert len(closed) == 1 and isinstance(closed[0], CallClosed)
    assert closed[0].outcome == "completed"
    kinds = [r.kind for r in log.of(CallEvent) if isinstance(r, CallEvent)]
    assert kinds[0] == "call_arrived" and kinds[-1] == "call_ended"
    assert "playback_started" in kinds
    assert not router.owned_channels()


async def test_caller_hangup_ends_the_call_without_hanging_up_again() -> None:
    async def runner(ctx: CallSession) -> Outcome:
        await ctx.next_event(5)
        return "completed"

    tel, log, _, _ = await run_one(runner, [ChannelHungUp(channel_id="ch1", cause=16)])
    assert "hangup" not in tel.names()
    closed = log.of(CallClosed)
    assert [c.outcome for c in closed if isinstance(c, CallClosed)] == ["completed"]


async def test_a_flow_that_hung_up_the_caller_is_not_hung_up_again() -> None:
    """The flow's own hangup (a hangup step, the end of a queue stay) is the call's last
    request: the end of the call does not send a second one (its hangup event is still on
    the way, so the session is still live). A hangup that failed is tried again."""
    async def runner(ctx: CallSession) -> Outcome:
        await ctx.telephony.hangup("agent-leg")  # another channel: the caller is still up
        await ctx.telephony.hangup(ctx.channel_id, "normal")
        return "completed"

    tel, log, _, _ = await run_one(runner)
    assert tel.names() == ["answer", "hangup", "hangup"]
    assert [a["channel_id"] for n, a in tel.commands if n == "hangup"] == ["agent-leg", "ch1"]
    assert [c.outcome for c in log.closed()] == ["completed"]

    down = FakeTelephony()

    async def failing(ctx: CallSession) -> Outcome:
        down.fail["hangup"] = PbxUnreachable("link down")
        try:
            await ctx.telephony.hangup(ctx.channel_id)
        except PbxUnreachable:
            del down.fail["hangup"]
        return "completed"

    manager, session = start_call(down, MemoryLog(), EventRouter(), failing)
    await asyncio.wait_for(manager._tasks[session.call_id], 5)
    assert down.names() == ["answer", "hangup", "hangup"]


async def test_crash_inside_the_flow_still_writes_a_final_row() -> None:
    async def runner(ctx: CallSession) -> Outcome:
        raise RuntimeError("boom")

    tel, log, _, _ = await run_one(runner)
    closed = log.closed()
    assert [c.outcome for c in closed] == ["failed"]
    assert "hangup" in tel.names()


async def test_abort_closes_with_the_given_outcome() -> None:
    started = asyncio.Event()

    async def runner(ctx: CallSession) -> Outcome:
        started.set()
        await ctx.next_event(10)
        return "completed"

    closed = await aborted(runner, started, "lost", "pbx restarted")
    assert [(c.outcome, c.reason) for c in closed] == [("lost", "pbx restarted")]


async def test_call_has_a_hard_upper_bound() -> None:
    async def runner(ctx: CallSession) -> Outcome:
        while True:
            await ctx.next_event(None)

    tel, log, _, _ = await run_one(runner)
    closed = log.closed()
    assert closed[0].outcome == "failed" and "maximum duration" in closed[0].reason
    assert "hangup" in tel.names()


async def test_drain_hands_remaining_calls_to_the_dialplan() -> None:
    started = asyncio.Event()

    async def runner(ctx: CallSession) -> Outcome:
        playback = ctx.next_playback_id()
        await ctx.telephony.play(ctx.channel_id, ["sound:x"], playback)
        started.set()
        while True:
            await ctx.next_event(None)

    tel = FakeTelephony()
    log = MemoryLog()
    manager, _ = start_call(tel, log, EventRouter(), runner)
    await asyncio.wait_for(started.wait(), 5)
    await manager.drain(grace=0.1)
    assert tel.names()[-2:] == ["stop_playback", "continue_in_dialplan"]
    closed = log.closed()
    assert closed[0].outcome == "interrupted"
    assert manager.start_inbound(entered("ch2")) is None


@pytest.mark.parametrize(
    ("number", "e164", "withheld"),
    [("+39061234", "+39061234", False), ("0039061234", "+39061234", False),
     ("anonymous", None, True), ("", None, True), ("061234", None, False)],
)
def test_caller_info(number: str, e164: str | None, withheld: bool) -> None:
    info = caller_info(number, "")
    assert info.e164 == e164 and info.withheld is withheld


async def test_an_abort_the_flow_swallowed_still_decides_the_outcome() -> None:
    from callcontrol.calls.context import CallerHungUp

    started = asyncio.Event()

    async def runner(ctx: CallSession) -> Outcome:
        started.set()
        try:
            await ctx.next_event(10)
        except CallerHungUp:  # a flow engine treats it like a hang-up and returns its own
            return "completed"
        return "completed"

    closed = await aborted(runner, started, "interrupted", "daemon shutdown")
    assert [(c.outcome, c.reason) for c in closed] == [("interrupted", "daemon shutdown")]


async def test_a_pbx_shutdown_hangup_ends_the_call_as_lost() -> None:
    async def runner(ctx: CallSession) -> Outcome:
        await ctx.next_event(5)
        return "completed"

    tel, log, _, _ = await run_one(
        runner, [ChannelHungUp(channel_id="ch1", cause=4, pbx_shutdown=True)]
    )
    closed = log.closed()
    assert [c.outcome for c in closed] == ["lost"]
    assert "hangup" not in tel.names()


async def test_a_pbx_shutdown_heard_on_an_agent_leg_also_ends_the_call_as_lost() -> None:
    async def runner(ctx: CallSession) -> Outcome:
        try:
            await ctx.next_event(5)
        except CallerHungUp:  # what a queue step does with a hang-up
            return "completed"
        return "completed"

    log = MemoryLog()
    router = EventRouter()
    manager, session = start_call(FakeTelephony(), log, router, runner)
    session.claim_channel("agent-leg")
    router.post(ChannelHungUp(channel_id="agent-leg", cause=4, pbx_shutdown=True))
    await asyncio.wait_for(manager._tasks[session.call_id], 5)
    closed = log.closed()
    assert [c.outcome for c in closed] == ["lost"]


async def test_the_lifecycle_follows_its_one_table() -> None:
    """Every state change goes through TRANSITIONS: a closed call never moves again, a call
    handed to the dialplan is not hung up by us, and the final row is written once."""
    seen: list[CallState] = []

    async def runner(session: CallSession) -> Outcome:
        seen.append(session.state)
        await session.hand_to_dialplan()
        seen.append(session.state)
        return "interrupted"

    tel, log, _, session = await run_one(runner)
    assert seen == [CallState.LIVE, CallState.IN_DIALPLAN]
    assert session.state is CallState.CLOSED
    assert [c.outcome for c in log.closed()] == ["interrupted"]
    assert "hangup" not in tel.names()
    session.close("completed")  # a second close writes nothing
    assert len(log.closed()) == 1
    assert all(CallState.LIVE not in targets for targets in TRANSITIONS.values())
    with pytest.raises(CallStateError):
        session._move(CallState.GONE)  # closed is final


async def test_a_feature_code_runs_on_a_service_call_that_owns_its_channel() -> None:
    """A headset's feature code is a session like any call: it owns its channel in the one
    router while its handler runs, writes no call row, and lets the channel go at its end."""
    tel, log, router = FakeTelephony(), MemoryLog(), EventRouter()
    seen: list[object] = []

    async def feature(session: CallSession, event: ChannelEntered) -> None:
        assert router.owns(event.channel_id) and not session.keeps_row
        await play_and_wait(session, ["sound:beep"], session.next_playback_id("feature"), 1.0)
        seen.append(event.args)
        session.log("ignored")  # a service call keeps no timeline

    manager = CallManager(tel, log, router, no_flow_runner, feature_handler=feature)
    router.deliver(ChannelEntered(channel_id="f1", args=("feature", "*46", "ep-a1")))
    assert router.owns("f1")
    router.deliver(PlaybackFinished(channel_id="f1", playback_id="pb-f1-feature-1"))
    await asyncio.wait_for(manager._services["feature-f1"], 5)
    assert seen == [("feature", "*46", "ep-a1")]
    assert not router.owns("f1") and log.records == []


async def test_drain_cancels_the_service_calls_last() -> None:
    tel, log, router = FakeTelephony(), MemoryLog(), EventRouter()
    manager = CallManager(tel, log, router, no_flow_runner)
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever(_session: CallSession) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    task = manager.start_service("cb-1", ["cb-1-agent", "cb-1-customer"], forever)
    assert router.owns("cb-1-agent") and router.owns("cb-1-customer")
    await asyncio.wait_for(started.wait(), 5)
    await manager.drain(0.1)
    assert task.cancelled() and cancelled.is_set()
    assert router.owned_channels() == []


async def no_flow_runner(_session: CallSession) -> Outcome:
    raise AssertionError("a service call never runs the flow")
