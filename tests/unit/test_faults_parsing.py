"""The fault harness's readers: sipp's message trace, the call classes, Stasis arguments."""

from __future__ import annotations

from datetime import UTC, datetime

from callcontrol.ari import protocol as ari
from callcontrol.ari.adapter import stasis_args_of
from callcontrol.store.tables import CallRow
from faults.stasis import StasisEntry
from faults.stream import SippCall, parse_message_trace
from faults.tally import classify

SEP = "----------------------------------------------- 2026-11-23 11:20:{:02d}.250000\n"


def message(second: int, direction: str, start: str, call_id: str, cseq: str) -> str:
    head = "UDP message sent (300 bytes):" if direction == "out" else \
        "UDP message received [300] bytes :"
    return (SEP.format(second) + f"{head}\n\n{start}\nVia: SIP/2.0/UDP 127.0.0.1\n"
            f"Call-ID: {call_id}\nCSeq: {cseq}\nContent-Length: 0\n\n")


TRACE = "".join([
    message(1, "out", "INVITE sip:200@127.0.0.1 SIP/2.0", "1-9@h", "1 INVITE"),
    message(1, "in", "SIP/2.0 401 Unauthorized", "1-9@h", "1 INVITE"),
    message(2, "in", "SIP/2.0 200 OK", "1-9@h", "2 INVITE"),
    message(3, "out", "INVITE sip:200@127.0.0.1 SIP/2.0", "2-9@h", "1 INVITE"),
    message(6, "out", "BYE sip:200@127.0.0.1 SIP/2.0", "1-9@h", "3 BYE"),
    message(6, "in", "SIP/2.0 200 OK", "1-9@h", "3 BYE"),
    message(7, "in", "SIP/2.0 200 OK", "2-9@h", "2 INVITE"),
    message(8, "in", "BYE sip:sipp@127.0.0.1 SIP/2.0", "2-9@h", "5 BYE"),
    message(8, "out", "SIP/2.0 200 OK", "2-9@h", "5 BYE"),
    message(9, "out", "INVITE sip:200@127.0.0.1 SIP/2.0", "3-9@h", "1 INVITE"),
    message(9, "in", "SIP/2.0 603 Decline", "3-9@h", "2 INVITE"),
])


def test_message_trace_gives_each_call_as_the_caller_saw_it() -> None:
    calls = parse_message_trace(TRACE)
    assert list(calls) == ["1-9@h", "2-9@h", "3-9@h"]
    first, second, third = calls.values()
    assert first.answered and first.completed and not first.far_end_bye
    assert first.last - first.started == 5.0
    assert second.answered and second.far_end_bye and not second.completed
    assert third.invite_status == 603 and not third.answered and not third.completed


def row(outcome: str | None) -> CallRow:
    now = datetime.now(UTC)
    return CallRow(call_id="c", started_at=now, updated_at=now, outcome=outcome,
                   ended_at=now if outcome else None)


def test_classes() -> None:
    call = SippCall("1-9@h", 0.0, 1.0)
    entered = StasisEntry("1-9@h", "u1", 0.0)
    fallback = StasisEntry("1-9@h", "u1", 0.0, fallback_status="FAILED")
    assert classify(call, [row("completed")], [entered]) == "completed"
    assert classify(call, [row(None)], [entered]) == "open"
    assert classify(call, [], []) == "no_row_not_reached"
    assert classify(call, [], [fallback]) == "no_row_app_down"
    assert classify(call, [], [entered]) == "no_row_missing"


def test_stasis_args_of_a_listed_channel() -> None:
    inside = ari.Channel.from_json({"id": "c1", "dialplan": {
        "context": "callcontrol-inbound", "exten": "200", "priority": 1,
        "app_name": "Stasis", "app_data": "callcontrol,inbound,1-9@127.0.0.1"}})
    assert stasis_args_of(inside) == ("inbound", "1-9@127.0.0.1")
    elsewhere = ari.Channel.from_json({"id": "c2", "dialplan": {"app_name": "Playback",
                                                                "app_data": "x,y"}})
    assert stasis_args_of(elsewhere) == ()
