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
# every fault of make faults once, short; hang_then_kill_daemon: callers enter the app while
# the daemon reads nothing, the restarted daemon must still give each of them a row
FAULTS = ["restart_asterisk", "kill_asterisk", "kill_daemon", "stop_daemon", "stop_database",
          "cut_ari", "cut_ami", "journal_full", "hang_then_kill_daemon"]
KILLING = {"kill_daemon", "hang_then_kill_daemon"}
# faults that must cost no call at all: the journal and the database are behind the calls
HARMLESS = {"stop_database", "journal_full"}
CPS, PHASE = 2, 11
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
    # nothing lost, nothing doubled, the daemon back
    assert phase["without_final_row"] == phase["rows_without_outcome"] == 0
    assert phase["doubled"] == 0
    assert phase["fault"]["recovered_after_s"] is not None, phase["fault"]
    assert phase["fault"]["reconnect_s"] is not None
    assert phase["daemon_up"] is True
    assert phase["daemon_deaths"] == (1 if phase["fault"]["name"] in KILLING else 0)
    # Asterisk's count: every call that reached the hotline has exactly one row
    asterisk = phase["asterisk"]
    assert asterisk["without_exactly_one_row"] == 0, asterisk
    assert asterisk["with_one_row"] == asterisk["reached_hotline"] >= 1


def test_faults_smoke(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULTS_", "CALLCONTROL"))}
    run = subprocess.run(
        [sys.executable, "-m", "faults", "--cps", str(CPS), "--phase-seconds", str(PHASE),
         "--lead-seconds", "2", "--talk-seconds", "2", "--db-down-seconds", "4",
         "--stop-seconds", "5", "--cut-seconds", "4", "--disk-full-seconds", "4",
         "--faults", ",".join(FAULTS), "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
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
    faults = {p["fault"]["name"]: p for p in result["faults"]}
    assert [p["fault"]["name"] for p in result["faults"]] == FAULTS
    for phase in result["faults"]:
        check_phase(phase)
    totals = result["totals"]
    expected = CPS * PHASE * len(FAULTS)
    assert totals["attempted"] == sum(p["attempted"] for p in result["faults"]) == expected
    assert result["sipp"]["created"] == result["sipp"]["traced_calls"] == expected
    assert totals["without_final_row"] == totals["doubled"] == 0
    assert totals["rows_not_placed_by_sipp"] == totals["open_rows_in_db"] == 0
    assert totals["reached_without_exactly_one_row"] == 0
    # the supervisor brought the killed daemon back at once; SIGSTOP kept the same process
    assert len(result["daemon_restarts"]) == 2
    for restart in result["daemon_restarts"]:
        assert restart["exit_code"] == -9 and restart["respawn_s"] < 1.5
        assert restart["error"] is None
    assert faults["stop_daemon"]["fault"]["same_process"] is True
    # each link fault was seen by the daemon: /health reported the link down meanwhile
    assert faults["cut_ari"]["fault"]["connections_reset"] >= 1
    assert faults["cut_ami"]["fault"]["connections_reset"] >= 1
    for name, link in (("stop_database", "db"), ("cut_ari", "ari"), ("cut_ami", "ami"),
                       ("journal_full", "journal")):
        assert faults[name]["fault"]["health_while"]["reported_down"] is True, (name, link)
    journal = faults["journal_full"]["fault"]
    assert journal["free_bytes"] < 65536 and "No space left" in str(
        journal["health_while"]["journal"]["last_error"])
    assert journal["journal_after"]["up"] is True
    assert journal["journal_after"]["backlog"] == journal["journal_after"]["dropped"] == 0
    # journal first, and a backlog behind a full journal: neither outage costs a call (calls
    # late in the phase may still meet the next fault, which the tally gives to that fault)
    for name in HARMLESS:
        phase = faults[name]
        assert phase["during_fault"] >= 1 and phase["failed_during_fault"] == 0, phase
    assert result["health_after"]["http"] == 200
