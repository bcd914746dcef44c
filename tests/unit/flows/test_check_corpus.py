"""The broken-flow corpus: every file under broken/ checks to exactly its .expected lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcontrol.flows.check import CheckContext, check_paths
from callcontrol.flows.model import Schedule

BROKEN = Path(__file__).parent / "broken"
CORPUS = sorted(BROKEN.glob("*.yaml"))

# What the corpus is checked against: two configured queues, one shared schedule, and the stock
# sounds the corpus uses (local prompts live in broken/prompts/).
CONTEXT = CheckContext(
    known_queues={"billing", "support"},
    shared_schedules={"office": Schedule(timezone="Europe/Rome")},
    stock_sounds={"en": {"hello-world", "goodbye"}},
)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_broken_flow_reports_exactly_the_expected_findings(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = path.with_suffix(".expected").read_text().splitlines()
    assert expected, f"{path.name} needs at least one expected finding"
    monkeypatch.chdir(BROKEN)
    found = [str(finding) for finding in check_paths([Path(path.name)], CONTEXT)]
    assert found == expected
