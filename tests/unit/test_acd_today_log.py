"""TodayLog keeps only what today's queue figures read, and passes every record on."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from callcontrol.acd.stats import TodayLog
from callcontrol.store.records import AgentEvent, CallEvent, CallOpened, Record


class Sink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> None:
        self.records.append(record)


def test_today_log_keeps_only_the_records_the_figures_read() -> None:
    sink = Sink()
    log = TodayLog(sink, ZoneInfo("UTC"))
    read = [
        CallEvent(call_id="c1", kind="queue_entered", data={"queue": "q", "entry_id": "e1"}),
        CallEvent(call_id="c1", kind="queue_left", data={"queue": "q", "entry_id": "e1"}),
        CallEvent(call_id="c1", kind="agent_disconnected", data={"queue": "q", "talk_s": 3}),
        CallEvent(call_id="c2", kind="queue_refused", data={"queue": "q", "reason": "overflow"}),
        AgentEvent(agent_id="a1", kind="state", data={"from": "wrap_up", "seconds": 2}),
    ]
    unread = [
        CallOpened(call_id="c1", channel_id="ch1"),
        CallEvent(call_id="c1", kind="agent_connected", data={"queue": "q"}),
        CallEvent(call_id="c1", kind="digits", data={"digits": "1"}),
        AgentEvent(agent_id="a1", kind="state", data={"from": "ringing", "to": "on_call"}),
    ]
    for record in [*read, *unread]:
        log.append(record)
    assert sink.records == [*read, *unread]
    assert log.records == read
