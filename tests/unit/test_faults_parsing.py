"""The fault harness's readers: sipp's message trace, the call classes, Stasis arguments."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from callcontrol.ari import protocol as ari
from callcontrol.ari.adapter import stasis_args_of
from callcontrol.store.tables import CallRow
from faults.inject import FaultWindow
from faults.stasis import StasisEntry
from faults.stream import SippCall, parse_message_trace
from faults.tally import Phase, StoreView, classify, tally

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


def row(outcome: str | None, call_id: str = "c", sip_call_id: str | None = None) -> CallRow:
    now = datetime.now(UTC)
    return CallRow(call_id=call_id, sip_call_id=sip_call_id, started_at=now, updated_at=now,
                   outcome=outcome, ended_at=now if outcome else None)


def test_a_call_cut_by_the_next_fault_counts_against_that_fault(tmp_path: Path) -> None:
    # issue 13's smoke disagreement: a call placed late in the database's phase, still talking
    # when the next fault cut the ARI link, was counted as failed during the database's fault
    database = FaultWindow("stop_database", 3.0, recovered=8.0, lifted=7.9)
    ari = FaultWindow("cut_ari", 23.0, recovered=29.0, lifted=27.0)
    phases = [Phase(0.0, 20.0, database), Phase(20.0, 40.0, ari)]
    calls = {
        "during-db": SippCall("during-db", 4.0, 9.0, 200, completed=True),
        "late-db": SippCall("late-db", 19.0, 25.0, 200, completed=True),
        "quiet": SippCall("quiet", 10.0, 15.0, 200, completed=True),
    }
    store = StoreView({"during-db": [row("completed", "r1", "during-db")],
                       "late-db": [row("lost", "r2", "late-db")],
                       "quiet": [row("completed", "r3", "quiet")]}, {}, [])
    stasis = {sip: [StasisEntry(sip, f"u-{sip}", 0.0)] for sip in calls}
    db, cut = tally(calls, phases, store, stasis, tmp_path / "daemon.log")["faults"]
    assert (db["attempted"], db["failed"], db["failed_during_fault"]) == (2, 0, 0)
    assert (cut["attempted"], cut["failed"], cut["failed_during_fault"]) == (1, 1, 1)
    assert cut["classes"] == {"lost": 1} and db["classes"] == {"completed": 2}
    assert db["asterisk"] == {"reached_hotline": 2, "with_one_row": 2,
                              "without_exactly_one_row": 0}


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
