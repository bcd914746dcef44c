"""The journal: append, read back, torn lines, rotation, checkpoint and segment deletion."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from callcontrol.errors import StoreError
from callcontrol.store.codec import decode_line, encode_line
from callcontrol.store.journal import Journal
from callcontrol.store.records import CallEvent, CallOpened, CallUpdated


def event(n: int, call_id: str = "c1") -> CallEvent:
    return CallEvent(call_id=call_id, kind="step", data={"n": n})


def read_all(journal: Journal, after: int = 0) -> list[tuple[int, int]]:
    reader = journal.reader(after)
    try:
        return [(seq, rec.data["n"]) for seq, rec in reader.read(10_000)]  # type: ignore[attr-defined]
    finally:
        reader.close()


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.jsonl"))


def test_codec_round_trips_every_field() -> None:
    answered = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    record = CallUpdated(call_id="c1", fields={"answered_at": answered, "tags": ["vip"]})
    seq, back = decode_line(encode_line(7, record))
    assert seq == 7
    assert back == record
    opened = CallOpened(call_id="c2", channel_id="ch", sip_call_id="abc@x", caller_number="42")
    assert decode_line(encode_line(1, opened))[1] == opened


def test_records_read_back_in_order_across_rotations(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=300)
    journal.open()
    seqs = [journal.append(event(n)) for n in range(20)]
    assert seqs == list(range(1, 21))
    assert len(segments(tmp_path)) > 3
    assert read_all(journal) == [(n + 1, n) for n in range(20)]
    assert read_all(journal, after=15) == [(n + 1, n) for n in range(15, 20)]
    journal.close()


def test_reader_follows_appends_to_the_active_segment(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(event(0))
    reader = journal.reader_at_tail()
    assert reader.read(10) == []
    journal.append(event(1))
    journal.append(event(2))
    assert [seq for seq, _ in reader.read(1)] == [2]
    assert [seq for seq, _ in reader.read(10)] == [3]
    assert reader.read(10) == []
    reader.close()
    journal.close()


def test_confirm_deletes_confirmed_segments_and_survives_restart(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=300)
    journal.open()
    for n in range(20):
        journal.append(event(n))
    before = segments(tmp_path)
    journal.confirm(12)
    after = segments(tmp_path)
    assert len(after) < len(before)
    assert read_all(journal, after=12) == [(n + 1, n) for n in range(12, 20)]
    journal.close()

    again = Journal(tmp_path, segment_bytes=300)
    again.open()
    assert (again.confirmed, again.last_seq) == (12, 20)
    assert read_all(again, after=again.confirmed) == [(n + 1, n) for n in range(12, 20)]
    assert again.append(event(20)) == 21
    again.confirm(21)
    again.close()
    assert len(segments(tmp_path)) == 1  # only the (now empty-of-work) active segment


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    for n in range(3):
        journal.append(event(n))
    journal.close()
    (active,) = segments(tmp_path)
    whole = encode_line(4, event(3))
    with (tmp_path / active).open("ab") as f:
        f.write(whole[: len(whole) // 2])  # a crash in the middle of a write

    again = Journal(tmp_path)
    again.open()
    assert again.last_seq == 3
    with capture_logs() as logs:
        assert read_all(again) == [(1, 0), (2, 1), (3, 2)]
    assert [e["event"] for e in logs] == ["journal_torn_line"]
    assert again.append(event(4)) == 4
    assert read_all(again)[-1] == (4, 4)
    again.close()


def test_garbage_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(event(0))
    journal.close()
    (active,) = segments(tmp_path)
    with (tmp_path / active).open("ab") as f:
        f.write(b'{"seq": 2, "type": "NoSuchRecord", "record": {}}\n')
    again = Journal(tmp_path)
    again.open()
    again.append(event(2))
    with capture_logs() as logs:
        assert read_all(again) == [(1, 0), (2, 2)]
    assert [e["event"] for e in logs] == ["journal_bad_line"]
    again.close()


def test_append_before_open_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Journal(tmp_path).append(event(0))
