"""`flows simulate` on the demo hotline (its command line: tests/unit/flows/test_cli.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from callcontrol.flows.registry import load_folder
from callcontrol.flows.simulate import FixtureHttp, run_simulation

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
