"""The fallback ledger (callcontrol.fallback_ledger): its lines, the rows they give, and the
import into a real store (SQLite): once per call, whatever how often it runs."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.fallback_ledger import (
    EVENT_KIND,
    LEDGER_NAME,
    REASON_APP_DOWN,
    REASON_CONTINUED,
    REASON_LOST,
    STATE_NAME,
    FallbackCall,
    FallbackLedger,
    closing_for,
    collect,
    parse_line,
    records_for,
)
from callcontrol.store.db import create_engine
from callcontrol.store.migrations import upgrade
from callcontrol.store.queries import call_timeline, find_by_sip_call_id, recent_calls
from callcontrol.store.records import CallOpened
from callcontrol.store.writer import StoreWriter

DIALPLAN = Path(__file__).parents[2] / "dialplan" / "extensions.conf"


def line(kind: str, uniqueid: str, entered: float, *, ended: float | None = None,
         status: str = "FAILED", sip: str = "", number: str = "%2B3906123", name: str = "",
         exten: str = "100", dial: str = "", cause: str = "16") -> str:
    """One ledger line as the dialplan writes it."""
    end = "" if ended is None else f"{ended:.3f}"
    tail = f"{dial},{cause}" if kind == "end" else ","
    return (f"1,{kind},{uniqueid},{entered:.3f},{end},{status},{sip},{number},{name},{exten},"
            f"{tail}\n")


def call_lines(uniqueid: str, entered: float, **kw: object) -> str:
    """The start and end lines (text) of one call that lasted 6 s."""
    start_kw = {k: v for k, v in kw.items() if k not in ("dial", "cause")}
    return (line("start", uniqueid, entered, **start_kw)  # type: ignore[arg-type]
            + line("end", uniqueid, entered, ended=entered + 6, **kw))  # type: ignore[arg-type]


# -- lines ---------------------------------------------------------------------------------

def test_a_line_decodes_what_the_caller_controls() -> None:
    call = parse_line(line("end", "1700000000.7", 1700000000.25, ended=1700000006.5,
                           sip="abc%40host", number="%2B39%2C06", name="R%C3%A9mi%0A%22x%22",
                           dial="ANSWER", cause="16"))
    assert call == FallbackCall(
        uniqueid="1700000000.7", entered=1700000000.25, ended=1700000006.5,
        stasis_status="FAILED", sip_call_id="abc@host", caller_number="+39,06",
        caller_name='Rémi\n"x"', extension="100", dial_status="ANSWER", hangup_cause="16")
    start = parse_line(line("start", "u1", 10.0, exten=""))
    assert start is not None and start.ended is None and start.extension == "s"
    assert start.app_down and start.disposition == "app_down"


@pytest.mark.parametrize("text", [
    "",
    "garbage",
    "2,start,u1,10.000,,FAILED,,,,100,,",  # unknown version
    "1,start,u1,10.000,,FAILED,,,,100,",  # a field short: a line torn by a crash
    "1,start,u1,ten,,FAILED,,,,100,,",
    "1,end,u1,10.000,,FAILED,,,,100,,",  # an end without its end time
    "1,start,,10.000,,FAILED,,,,100,,",  # no unique id
    "1,begin,u1,10.000,,FAILED,,,,100,,",
])
def test_lines_that_are_not_ledger_lines_are_skipped(text: str) -> None:
    assert parse_line(text) is None


def test_the_end_line_wins_over_the_start_line() -> None:
    calls = collect([line("start", "u1", 10.0), line("start", "u2", 11.0), "torn,line",
                     line("end", "u1", 10.0, ended=16.0, dial="NOANSWER")])
    assert {k: (c.uniqueid, c.ended) for k, c in calls.items()} == {
        "u1@10.000": ("u1", 16.0), "u2@11.000": ("u2", None)}


def test_the_dialplan_writes_the_lines_this_module_reads() -> None:
    text = DIALPLAN.read_text()
    values = re.findall(r"Set\(FILE\(\$\{ASTLOGDIR\}/([^,]+),,,al,u\)=(.*)\)$", text, re.M)
    assert [name for name, _ in values] == [LEDGER_NAME, LEDGER_NAME]
    for _, value in values:
        while "${" in value:  # ${URIENCODE(${X})} -> v: every expansion is one field
            value = re.sub(r"\$\{[^${}]*\}", "v", value)
        fields = value.split(",")
        assert len(fields) == 12 and fields[0] == "1" and fields[1] in ("start", "end"), value
    assert "hangup_handler_push)=callcontrol-fallback,ledgerend,1" in text


# -- the rows ------------------------------------------------------------------------------

def test_outcomes() -> None:
    [ended] = collect(call_lines("u1", 100.0, dial="NOANSWER").splitlines()).values()
    failed = closing_for(ended, None)
    assert failed is not None and failed.outcome == "failed" and failed.reason == REASON_APP_DOWN
    assert failed.at == datetime.fromtimestamp(106.0, UTC)

    [answered] = collect(call_lines("u2", 100.0, dial="ANSWER").splitlines()).values()
    overflow = closing_for(answered, None)
    assert overflow is not None and overflow.outcome == "overflow"
    assert overflow.reason.startswith(REASON_APP_DOWN)

    [continued] = collect(call_lines("u3", 100.0, status="SUCCESS").splitlines()).values()
    closing = closing_for(continued, None)
    assert closing is not None and closing.reason == REASON_CONTINUED
    assert not continued.app_down and continued.disposition == "continued"

    [running] = collect([line("start", "u4", 100.0)]).values()
    assert closing_for(running, None) is None
    assert closing_for(running, datetime.fromtimestamp(50.0, UTC)) is None  # same Asterisk
    restarted = datetime.fromtimestamp(200.0, UTC)
    lost = closing_for(running, restarted)
    assert lost is not None and (lost.outcome, lost.reason, lost.at) == (
        "lost", REASON_LOST, restarted)


def test_records_have_ids_derived_from_the_entry() -> None:
    [call] = collect(call_lines("u1", 100.0, sip="sip-1").splitlines()).values()
    closing = closing_for(call, None)
    assert closing is not None
    first, again = records_for(call, closing), records_for(call, closing)
    assert [r.record_id for r in first] == [r.record_id for r in again]
    assert len({r.record_id for r in first}) == 3
    opened = first[0]
    assert isinstance(opened, CallOpened)
    assert (opened.channel_id, opened.sip_call_id, opened.caller_number, opened.extension) == (
        "u1", "sip-1", "+3906123", "100")
    assert opened.at == datetime.fromtimestamp(100.0, UTC)
    # the same unique id after an Asterisk restart is another call
    [other] = collect(call_lines("u1", 700.0).splitlines()).values()
    assert records_for(other, closing)[0].record_id != opened.record_id


# -- the import ----------------------------------------------------------------------------

class Store:
    """A real SQLite store with its writer."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = f"sqlite+aiosqlite:///{folder / 'store.db'}"
        self.engine: AsyncEngine = create_engine(self.url)
        self.writer = StoreWriter(self.engine, folder / "journal")

    def ledger(self, **kw: int) -> FallbackLedger:
        """An importer of ``folder/log/LEDGER_NAME`` (what a new daemon makes)."""
        return FallbackLedger(self.folder / "log" / LEDGER_NAME,
                              self.folder / "journal" / STATE_NAME,
                              self.engine, self.writer, **kw)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    made = Store(tmp_path)
    await upgrade(made.url)
    made.writer.start()
    try:
        yield made
    finally:
        await made.writer.close()
        await made.engine.dispose()


def write(store: Store, text: str) -> None:
    path = store.folder / "log" / LEDGER_NAME
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as out:
        out.write(text)


async def test_each_call_gets_one_final_row_however_often_the_ledger_is_read(
    store: Store,
) -> None:
    ledger = store.ledger()
    assert await ledger.sync() == 0  # the first import sets "since": no ledger yet
    assert ledger.since is not None
    t = ledger.since + 1
    write(store, call_lines("1.1", t, sip="down-1", name="Ann%20B", dial="NOANSWER")
          + call_lines("1.2", t + 1, sip="down-2", dial="ANSWER")
          + line("start", "1.3", t + 2, sip="down-3"))
    assert await ledger.sync() == 2
    assert await ledger.sync() == 0
    await store.writer.flush()

    [row] = await find_by_sip_call_id(store.engine, "down-1")
    assert (row.outcome, row.close_reason, row.channel_id) == ("failed", REASON_APP_DOWN, "1.1")
    assert (row.caller_number, row.caller_name, row.extension, row.hangup_cause) == (
        "+3906123", "Ann B", "100", "16")
    assert row.started_at.timestamp() == pytest.approx(t, abs=0.01)
    assert row.ended_at is not None and row.ended_at.timestamp() == pytest.approx(t + 6, abs=0.01)
    [event] = await call_timeline(store.engine, row.call_id)
    assert event.kind == EVENT_KIND
    assert event.data == {"disposition": "app_down", "stasis_status": "FAILED",
                          "dial_status": "NOANSWER", "outcome": "failed",
                          "reason": REASON_APP_DOWN}
    [overflow] = await find_by_sip_call_id(store.engine, "down-2")
    assert overflow.outcome == "overflow"
    assert await find_by_sip_call_id(store.engine, "down-3") == []  # still in the fallback

    write(store, line("end", "1.3", t + 2, ended=t + 9, sip="down-3"))
    assert await ledger.sync() == 1
    await store.writer.flush()
    again = store.ledger()  # the daemon restarted: the store knows what was imported
    assert await again.sync() == 0
    assert len(await recent_calls(store.engine)) == 3
    [late] = await find_by_sip_call_id(store.engine, "down-3")
    assert late.outcome == "failed"


async def test_calls_with_a_row_and_calls_before_the_first_import_are_left_alone(
    store: Store,
) -> None:
    before = time.time()
    write(store, call_lines("2.0", before - 60, sip="old"))  # another store's call
    ledger = store.ledger()
    assert await ledger.sync() == 0
    assert json.loads((store.folder / "journal" / STATE_NAME).read_text())["since"] >= before
    assert store.ledger().since is None  # read when it first imports
    assert ledger.since is not None
    now = ledger.since
    store.writer.append(CallOpened(call_id="owned", channel_id="2.1", sip_call_id="seen-1"))
    store.writer.append(CallOpened(call_id="other-leg", channel_id="x", sip_call_id="seen-2"))
    await store.writer.flush()
    write(store, call_lines("2.1", now + 1, sip="seen-1", status="SUCCESS")  # continued
          + call_lines("2.2", now + 2, sip="seen-2")  # its SIP Call-ID has a row
          + call_lines("2.3", now + 3, sip="refused", status="SUCCESS"))  # continued, no row
    assert await ledger.sync(store_idle=False) == 0  # continued calls wait for the store
    assert await ledger.sync(store_idle=True) == 1
    await store.writer.flush()
    [refused] = await find_by_sip_call_id(store.engine, "refused")
    assert (refused.outcome, refused.close_reason) == ("failed", REASON_CONTINUED)
    assert [r.call_id for r in await find_by_sip_call_id(store.engine, "seen-1")] == ["owned"]
    assert await find_by_sip_call_id(store.engine, "old") == []


async def test_a_call_cut_by_an_asterisk_restart_is_lost(store: Store) -> None:
    ledger = store.ledger()
    await ledger.sync()
    assert ledger.since is not None
    now = ledger.since
    write(store, line("start", "3.1", now + 1, sip="cut"))
    assert await ledger.sync(pbx_started=datetime.fromtimestamp(now, UTC)) == 0
    restarted = datetime.fromtimestamp(now + 30, UTC)
    assert await ledger.sync(pbx_started=restarted) == 1
    await store.writer.flush()
    [row] = await find_by_sip_call_id(store.engine, "cut")
    assert (row.outcome, row.ended_at) == ("lost", restarted)


async def test_the_ledger_rotates_once_settled_and_nothing_is_imported_twice(
    store: Store,
) -> None:
    ledger = store.ledger(rotate_bytes=200)
    await ledger.sync()
    assert ledger.since is not None
    now = ledger.since
    path = store.folder / "log" / LEDGER_NAME
    write(store, call_lines("4.1", now + 1, sip="r-1") + line("start", "4.2", now + 2, sip="r-2"))
    assert await ledger.sync() == 1
    assert path.exists()  # a call still in the fallback: not rotated
    write(store, line("end", "4.2", now + 2, ended=now + 8, sip="r-2"))
    assert await ledger.sync() == 1
    assert not path.exists() and ledger.rotated.exists()
    write(store, call_lines("4.3", now + 3, sip="r-3"))  # Asterisk starts a new file
    assert await ledger.sync() == 1
    await store.writer.flush()
    assert await store.ledger().sync() == 0
    rows = await recent_calls(store.engine)
    assert sorted(r.sip_call_id or "" for r in rows) == ["r-1", "r-2", "r-3"]


async def test_an_import_repeated_before_the_database_has_it_stores_one_row(
    store: Store,
) -> None:
    first = store.ledger()
    await first.sync()
    assert first.since is not None
    now = first.since
    write(store, call_lines("5.1", now + 1, sip="twice"))
    # two daemons' imports (the first killed before its records reached the database)
    assert await store.ledger().sync() == 1
    assert await store.ledger().sync() == 1
    await store.writer.flush()
    [row] = await find_by_sip_call_id(store.engine, "twice")
    assert [e.kind for e in await call_timeline(store.engine, row.call_id)] == [EVENT_KIND]
