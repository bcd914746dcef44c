"""`make faults` at its shortest: each fault once under a few calls; every call accounted for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# hang_then_kill_daemon: callers enter the app while the daemon reads nothing; the restarted
# daemon must still give each of them a row
FAULTS = ["kill_daemon", "restart_asterisk", "stop_database", "hang_then_kill_daemon"]
CPS, PHASE = 2, 10
ROW_CLASSES = {"completed", "abandoned", "timed_out", "overflow", "no_agents", "voicemail",
               "callback_requested", "transferred", "failed", "lost", "interrupted"}
OTHER_CLASSES = {"open", "no_row_missing", "no_row_app_down", "no_row_not_reached"}


def check_phase(phase: dict[str, Any]) -> None:
    """Every attempted call is in exactly one class and counted once by sipp."""
    assert set(phase) >= {"fault", "attempted", "sipp", "classes", "reasons", "failed",
                          "during_fault", "failed_during_fault", "without_final_row", "doubled"}
    attempted = phase["attempted"]
    assert attempted >= 1
    assert set(phase["classes"]) <= ROW_CLASSES | OTHER_CLASSES, phase["classes"]
    assert sum(phase["classes"].values()) == attempted
    assert phase["sipp"]["completed"] + phase["sipp"]["failed"] == attempted
    assert 0 <= phase["failed_during_fault"] <= phase["failed"] <= attempted
    assert phase["failed_during_fault"] <= phase["during_fault"] <= attempted
    not_completed = attempted - phase["classes"].get("completed", 0)
    assert phase["failed"] >= not_completed
    assert phase["without_final_row"] == 0 and phase["doubled"] == 0
    assert phase["fault"]["recovered_after_s"] is not None, phase["fault"]


def test_faults_smoke(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTS_", "CALLCONTROL"))}
    run = subprocess.run(
        [sys.executable, "-m", "faults", "--cps", str(CPS), "--phase-seconds", str(PHASE),
         "--lead-seconds", "3", "--talk-seconds", "2", "--db-down-seconds", "4",
         "--faults", ",".join(FAULTS), "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1, f"{run.stdout}\n{run.stderr}"
    result = json.loads(files[0].read_text())
    assert run.returncode == 0, json.dumps(result.get("defects"), indent=1)[:8000]
    assert run.stdout.strip().endswith(files[0].name)
    assert set(result) >= {"started", "git", "machine", "settings", "sipp", "daemon_restarts",
                           "health_after", "faults", "totals", "defects", "ok"}
    assert result["ok"] is True and result["started"].endswith("Z")
    assert result["machine"]["asterisk"].startswith("22.")
    assert [p["fault"]["name"] for p in result["faults"]] == FAULTS
    for phase in result["faults"]:
        check_phase(phase)
    totals = result["totals"]
    expected = CPS * PHASE * len(FAULTS)
    assert totals["attempted"] == sum(p["attempted"] for p in result["faults"]) == expected
    assert result["sipp"]["created"] == result["sipp"]["traced_calls"] == expected
    assert totals["without_final_row"] == totals["doubled"] == 0
    assert totals["rows_not_placed_by_sipp"] == totals["open_rows_in_db"] == 0
    # the supervisor brought the killed daemon back at once
    assert len(result["daemon_restarts"]) == 2
    for restart in result["daemon_restarts"]:
        assert restart["exit_code"] == -9 and restart["respawn_s"] < 1.5
        assert restart["error"] is None
    # journal first: a database outage costs no call (calls late in its phase may still meet
    # the next fault)
    database = result["faults"][2]
    assert database["during_fault"] >= 1 and database["failed_during_fault"] == 0, database
    assert result["health_after"]["http"] == 200
