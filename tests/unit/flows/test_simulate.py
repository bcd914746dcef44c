"""`flows simulate` on the demo hotline, and its command line."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from callcontrol.flows.registry import load_folder
from callcontrol.flows.simulate import FixtureHttp, run_simulation, simulate_main

FLOWS = Path(__file__).resolve().parents[3] / "ivr_flows"
MONDAY = datetime.fromisoformat("2026-03-02T10:00:00+01:00")


async def test_simulation_of_the_hotline_vip_path() -> None:
    flows, refused = load_folder(FLOWS)
    assert refused == {}
    http = FixtureHttp.from_data([{"url": "/customers/123456", "json": {"tier": "vip"}}])
    result = await run_simulation("hotline", flows, digits="1 123456#", http=http, now=MONDAY)
    assert result.path[-3:] == ("lookup", "vip_check", "vip_queue")
    assert result.variables["customer"] == {"tier": "vip"}
    assert str(http.requests[0].url) == "http://127.0.0.1:8080/demo/crm/customers/123456"
    own = str(FLOWS / "prompts" / "en" / "welcome")
    assert result.media[0] == [f"sound:{own}"]  # a shipped prompt, by its path


def test_simulate_command_prints_path_and_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = tmp_path / "crm.yaml"
    fixture.write_text("- url: /customers/\n  status: 500\n")
    code = simulate_main(
        [
            "hotline",
            "--dir",
            str(FLOWS),
            "--digits",
            "1 123456#",
            "--http-fixture",
            str(fixture),
            "--at",
            "2026-03-02T10:00:00+01:00",
            "--var",
            "tier=gold",
            "--json",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"][-2:] == ["lookup", "billing"]
    assert printed["variables"]["tier"] == "gold"
    assert printed["variables"]["http"]["status"] == 500


def test_simulate_command_refuses_an_unknown_flow(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate_main(["nope", "--dir", str(FLOWS)]) == 1
    assert "not live" in capsys.readouterr().err
