"""Parsing and validation of the interaction record's inputs: phone numbers (E.164), byte
ranges, page cursors, and the disposition settings of the config."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from callcontrol.api.interaction_api import decode_cursor, encode_cursor
from callcontrol.api.ranges import UNSATISFIABLE, ByteRange, parse_range
from callcontrol.config import load_config
from callcontrol.errors import ConfigError
from callcontrol.numbers import BadNumber, NumberPlan, normalize, stored_forms
from callcontrol.store.call_search import Cursor

ITALY = NumberPlan("39", "")
GERMANY = NumberPlan("49", "0")


@pytest.mark.parametrize(("text", "plan", "number"), [
    ("+390612345678", ITALY, "+390612345678"),
    ("0039 06 1234 5678", ITALY, "+390612345678"),
    ("06-1234.5678", ITALY, "+390612345678"),
    ("+39 (06) 12345678", ITALY, "+390612345678"),
    ("030 1234567", GERMANY, "+49301234567"),
    ("+49 30 1234567", GERMANY, "+49301234567"),
    ("0049301234567", NumberPlan(), "+49301234567"),
])
def test_numbers_normalise_to_e164(text: str, plan: NumberPlan, number: str) -> None:
    assert normalize(text, plan) == number


@pytest.mark.parametrize(("text", "plan", "why"), [
    ("alice", ITALY, "digits"),
    ("", ITALY, "digits"),
    ("+", ITALY, "digits"),
    ("+39+06", ITALY, "digits"),
    ("06 1234", NumberPlan(), "country_code"),
    ("+0612345", ITALY, "E.164"),
    ("+1234567890123456", ITALY, "E.164"),
    ("٠٦١٢٣", ITALY, "digits"),  # Arabic-Indic digits: isdigit() says yes, E.164 says no
    ("1" * 65, ITALY, "at most"),
])
def test_garbage_is_refused_with_a_reason(text: str, plan: NumberPlan, why: str) -> None:
    with pytest.raises(BadNumber, match=why):
        normalize(text, plan)


@pytest.mark.parametrize("plan", [ITALY, GERMANY, NumberPlan()])
@pytest.mark.parametrize("number", ["+390612345678", "+49301234567", "+15551230001"])
def test_every_stored_form_normalises_back_to_the_number(plan: NumberPlan, number: str) -> None:
    forms = stored_forms(number, plan)
    assert forms[:2] == [number, "00" + number[1:]]
    assert all(normalize(form, plan) == number for form in forms)


def test_the_national_form_is_found_in_the_sites_country_only() -> None:
    assert "0612345678" in stored_forms("+390612345678", ITALY)
    assert "0301234567" in stored_forms("+49301234567", GERMANY)
    assert len(stored_forms("+49301234567", ITALY)) == 2


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 100, None),
    ("bytes=0-9", 100, ByteRange(0, 9)),
    ("bytes=90-", 100, ByteRange(90, 99)),
    ("bytes=90-1000", 100, ByteRange(90, 99)),
    ("bytes=-10", 100, ByteRange(90, 99)),
    ("bytes=-1000", 100, ByteRange(0, 99)),
    ("bytes=100-", 100, UNSATISFIABLE),
    ("bytes=-0", 100, UNSATISFIABLE),
    ("bytes=0-", 0, UNSATISFIABLE),
    ("bytes=9-0", 100, None),  # invalid: ignored
    ("bytes=0-1,5-6", 100, None),  # several ranges: the whole file
    ("items=0-9", 100, None),
    ("bytes=-", 100, None),
    ("bytes=x-9", 100, None),
])
def test_one_byte_range_or_none(header: str | None, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


def test_content_range_names_the_bytes_and_the_size() -> None:
    assert ByteRange(100, 199).content_range(1000) == "bytes 100-199/1000"
    assert ByteRange(100, 199).length == 100


def test_a_cursor_reads_back_and_garbage_is_refused() -> None:
    cursor = Cursor(datetime(2026, 12, 3, 9, 30, 1, 250000, tzinfo=UTC), "abc123")
    assert decode_cursor(encode_cursor(cursor)) == cursor
    for bad in ("", "!!!", "e30", encode_cursor(cursor)[:-3], "WyIyMDI2LTEyLTAzIiwgMV0"):
        with pytest.raises(ValueError):
            decode_cursor(bad)


CONFIG = """\
asterisk:
  ari: {{password: {{env: X}}}}
  ami: {{password: {{env: X}}}}
{extra}
"""


def _load(tmp_path: Path, extra: str) -> None:
    path = tmp_path / "callcontrol.yaml"
    path.write_text(CONFIG.format(extra=extra))
    load_config(path, {"X": "secret"})


def test_dispositions_load(tmp_path: Path) -> None:
    _load(tmp_path, """\
site: {country_code: "39", national_prefix: ""}
queues:
  billing:
    wrap_up: 10
    dispositions:
      required: true
      wrap_up_max: 60
      codes:
        - {code: "1", label: Resolved}
        - {code: "22", label: Escalated, requires_note: true}
""")


@pytest.mark.parametrize(("extra", "where", "message"), [
    ("queues: {q: {dispositions: {codes: [{code: '1', label: A}, {code: '1', label: B}]}}}",
     ":4:", "listed twice"),
    ("queues: {q: {dispositions: {codes: [{code: 'x1', label: A}]}}}", ":4:",
     "1 to 8 digits"),
    ("queues: {q: {dispositions: {codes: []}}}", ":4:", "at least 1"),
    ("queues: {q: {wrap_up: 30, dispositions: {wrap_up_max: 10, codes: [{code: '1', label: A}]}}}",
     ":4:", "shorter than wrap_up"),
    ("queues: {q: {dispositions: {required: maybe, codes: [{code: '1', label: A}]}}}", ":4:",
     "boolean"),
    ("acd: {disposition_code: '*4'}", ":4:", "overlap"),
    ("acd: {disposition_code: '48'}", ":4:", "'*' and 1 to 3 digits"),
    ("site: {country_code: '+39'}", ":4:", "country calling code"),
])
def test_bad_disposition_settings_are_refused_with_their_place(
        tmp_path: Path, extra: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, extra)
    assert where in str(caught.value) and message in str(caught.value), str(caught.value)


def test_a_disposition_reads_back_from_the_journal_with_its_time() -> None:
    from callcontrol.acd.agents import disposition_update
    from callcontrol.store.codec import decode_line, encode_line
    from callcontrol.store.records import CallUpdated

    at = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    _, record = decode_line(encode_line(7, disposition_update("c1", "2", "L", "n", "x", at)))
    assert isinstance(record, CallUpdated) and record.fields["disposition_at"] == at
