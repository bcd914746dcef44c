"""`flows test`: the demo's cases pass, and a wrong expectation fails with its difference."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from callcontrol.flows.flowtest import flowtest_main, run_case_file

FLOWS = Path(__file__).resolve().parents[3] / "ivr_flows"


def test_demo_cases_pass() -> None:
    out = io.StringIO()
    assert flowtest_main([FLOWS / "tests"], out) == 0
    assert "0 failed" in out.getvalue()


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    shutil.copy(FLOWS / "hotline.yaml", tmp_path / "hotline.yaml")
    (tmp_path / "tests").mkdir()
    case = tmp_path / "tests" / "hotline.yaml"
    case.write_text(
        "flow: hotline\ncases:\n"
        "  - name: wrong\n    at: '2026-03-01T10:00:00+01:00'\n    digits: R\n"
        "    path: [welcome, office_hours, main_menu]\n    variables: {message: other}\n"
        "    outcome: completed\n"
    )
    [result] = run_case_file(case)
    assert not result.passed
    assert any(p.startswith("path: expected") for p in result.problems)
    assert any(p.startswith("variable message") for p in result.problems)
    assert "outcome: expected 'completed', got 'voicemail'" in result.problems
    out = io.StringIO()
    assert flowtest_main([case], out) == 1
