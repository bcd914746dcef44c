"""`make bench` at its shortest: one low step on both sides, a well-formed result, no failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PERCENTILES = {"p50", "p95", "p99"}


def check_step(step: dict[str, object], side: str) -> None:
    assert set(step) >= {"cps", "concurrent_peak", "attempted", "completed", "failed",
                         "cpu_pct_one_core", "peak_rss_mb", "digit_to_prompt_ms",
                         "digit_to_agent_ms", "db_rows"}
    assert step["cps"] == 2
    assert step["attempted"] == 6
    assert step["failed"] == 0, step
    assert step["completed"] == 6
    assert isinstance(step["concurrent_peak"], int) and step["concurrent_peak"] >= 1
    cpu, rss = step["cpu_pct_one_core"], step["peak_rss_mb"]
    assert isinstance(cpu, dict) and isinstance(rss, dict)
    assert set(cpu) == set(rss) == {"daemon", "asterisk"}
    assert isinstance(cpu["asterisk"], float) and cpu["asterisk"] > 0
    assert isinstance(rss["asterisk"], float) and rss["asterisk"] > 10
    for key in ("digit_to_prompt_ms", "digit_to_agent_ms"):
        figures = step[key]
        assert isinstance(figures, dict) and set(figures) == PERCENTILES
        assert all(isinstance(v, float) and 0 <= v < 2000 for v in figures.values()), figures
    if side == "dialplan":
        assert cpu["daemon"] is None and rss["daemon"] is None and step["db_rows"] is None
    else:
        assert isinstance(cpu["daemon"], float) and cpu["daemon"] > 0
        assert step["db_rows"] is not None
        assert step["db_rows"]["calls"] == 6  # type: ignore[index]
        assert step["db_rows"]["events"] > 6  # type: ignore[index]


def test_bench_smoke(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "CALLCONTROL"))}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--steps", "2", "--step-seconds", "3",
         "--talk-seconds", "2", "--agents", "12", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and run.stdout.strip().endswith(files[0].name)
    result = json.loads(files[0].read_text())
    assert set(result) >= {"started", "git", "machine", "settings", "sides",
                           "ratio_sustained_cps"}
    assert result["started"].endswith("Z")
    assert result["machine"]["asterisk"].startswith("22.")
    assert result["settings"]["agents"] == 12
    assert set(result["sides"]) == {"dialplan", "callcontrol"}
    for name, side in result["sides"].items():
        assert "error" not in side, side.get("error")
        assert len(side["steps"]) == 1
        check_step(side["steps"][0], name)
        assert side["max_sustained_cps"] == 2
    assert result["ratio_sustained_cps"] == 1.0
    if result["chart"] is None:
        assert result["chart_skipped"]
    else:
        assert (tmp_path / result["chart"]).is_file()
