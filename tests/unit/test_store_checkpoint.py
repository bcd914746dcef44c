"""The journal's checkpoint, rewritten in place after every batch: one fixed-size line that a
restart reads back, whatever an earlier version left in the file."""

from __future__ import annotations

from pathlib import Path

from callcontrol.store.journal import CHECKPOINT, CHECKPOINT_BYTES, Journal
from callcontrol.store.records import CallEvent


def filled(directory: Path, records: int) -> Journal:
    journal = Journal(directory)
    journal.open()
    for n in range(records):
        journal.append(CallEvent(call_id="c1", kind="step", data={"n": n}))
    return journal


def test_every_confirm_rewrites_one_fixed_size_line(tmp_path: Path) -> None:
    journal = filled(tmp_path, 12)
    for seq in (3, 9, 12):
        journal.confirm(seq)
        data = (tmp_path / CHECKPOINT).read_bytes()
        assert len(data) == CHECKPOINT_BYTES and data.endswith(b"\n")
    journal.close()
    again = Journal(tmp_path)
    again.open()
    assert (again.confirmed, again.last_seq) == (12, 12)
    again.close()


def test_checkpoints_of_any_length_left_before_are_read_then_replaced(tmp_path: Path) -> None:
    for old in ('{"confirmed_seq": 2}', '{"confirmed_seq": 2}' + " " * 200 + "\n"):
        directory = tmp_path / str(len(old))
        filled(directory, 5).close()
        (directory / CHECKPOINT).write_text(old)
        journal = Journal(directory)
        journal.open()
        assert journal.confirmed == 2
        journal.confirm(4)
        journal.close()
        assert len((directory / CHECKPOINT).read_bytes()) == CHECKPOINT_BYTES
        again = Journal(directory)
        again.open()
        assert again.confirmed == 4
        again.close()
