"""The bench's agent UAS blocks: each on its own SIP port and media ports that are free now
and apart from each other (so two benches side by side do not share media ports)."""

from __future__ import annotations

from itertools import pairwise

from bench.pbx import agent_blocks
from callcontrol.pbx.settings import SipAccount


def test_agents_are_split_over_blocks_with_distinct_free_media_ports() -> None:
    agents = tuple(SipAccount(f"agent{n}", "x") for n in range(250))
    blocks = agent_blocks(agents, per_uas=100)
    assert [len(block.agents) for block in blocks] == [100, 100, 50]
    assert [a for block in blocks for a in block.agents] == list(agents)
    media = sorted(block.media_port for block in blocks)
    assert all(b - a >= 4 for a, b in pairwise(media))
    assert len({block.port for block in blocks}) == 3
