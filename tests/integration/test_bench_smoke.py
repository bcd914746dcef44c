"""`make bench` at its shortest: two low steps on both sides, every call through, rows that
match Asterisk's calls, a well-formed result (and its chart)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PERCENTILES = {"p50", "p95", "p99"}
STEPS = (2, 4)
STEP_SECONDS = 4


def check_step(step: dict[str, Any], side: str, cps: int) -> None:
    calls = cps * STEP_SECONDS
    assert step["cps"] == cps
    assert step["attempted"] == calls
    assert step["failed"] == 0, step
    assert step["completed"] == calls
    # every call reached Asterisk, was bridged with an agent, and got the agent's BYE
    assert step["asterisk_calls"] == calls
    assert step["reached_agent"] == calls
    assert step["sipp"]["successful"] == calls and step["sipp"]["failed"] == 0
    assert step["drained"] is True
    assert 1 <= step["concurrent_peak"] <= calls
    cpu, rss = step["cpu_pct_one_core"], step["peak_rss_mb"]
    assert isinstance(cpu["asterisk"], float) and cpu["asterisk"] > 0
    assert isinstance(rss["asterisk"], float) and rss["asterisk"] > 10
    for key in ("digit_to_prompt_ms", "digit_to_agent_ms"):
        figures = step[key]
        assert set(figures) == PERCENTILES
        assert all(isinstance(v, float) and 0 <= v < 2000 for v in figures.values()), figures
    assert step["digit_to_prompt_ms"]["p50"] <= step["digit_to_agent_ms"]["p50"]
    if side == "dialplan":
        assert cpu["daemon"] is None and rss["daemon"] is None and step["db_rows"] is None
        return
    assert isinstance(cpu["daemon"], float) and cpu["daemon"] > 0
    rows = step["db_rows"]
    # one closed row per caller channel Asterisk announced, matched by channel and Call-ID
    assert rows["calls"] == rows["asterisk_calls"] == calls
    assert rows["missing"] == rows["doubled"] == rows["extra"] == rows["open"] == 0
    assert rows["sip_call_ids_without_row"] == 0
    assert rows["outcomes"] == {"completed": calls}
    assert rows["events_per_call"] > 5
    assert step["daemon_view"]["digit_to_agent_ms"]["p50"] is not None


def test_bench_smoke(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENCH_", "CALLCONTROL"))}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--steps", ",".join(map(str, STEPS)),
         "--step-seconds", str(STEP_SECONDS), "--talk-seconds", "2", "--agents", "20",
         "--agents-per-uas", "10", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=110, check=False,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and run.stdout.strip().endswith(files[0].name)
    result = json.loads(files[0].read_text())
    assert result["started"].endswith("Z")
    assert result["machine"]["asterisk"].startswith("22.")
    assert result["settings"]["agents"] == 20
    assert set(result["sides"]) == {"dialplan", "callcontrol"}
    for name, side in result["sides"].items():
        assert "error" not in side, side.get("error")
        assert [s["cps"] for s in side["steps"]] == list(STEPS)
        for step, cps in zip(side["steps"], STEPS, strict=True):
            check_step(step, name, cps)
        assert side["max_sustained_cps"] == STEPS[-1]
    assert result["ratio_sustained_cps"] == 1.0
    assert "| callcontrol | 4 |" in run.stderr  # the console table
    if importlib.util.find_spec("matplotlib") is None:
        assert result["chart"] is None and "matplotlib" in result["chart_skipped"]
    else:
        png = tmp_path / result["chart"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
