"""Which free agent a queue offers its caller to.

Every strategy gets the candidates (available agents of the queue that have every required
skill at its minimum level, in the queue's member order) and returns them best first:

- ``longest_idle``: longest since the last call ended (or since login when no call yet);
- ``round_robin``: the member after the one picked last, wrapping around;
- ``fewest_calls``: fewest calls answered, then longest idle;
- ``random``: a random order from a seedable generator;
- ``skills``: best match first (highest sum of levels over the required skills), then longest
  idle.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from callcontrol.acd.agents import Agent

_NEVER = datetime.min.replace(tzinfo=UTC)


def has_skills(agent: Agent, required: Mapping[str, int]) -> bool:
    """True when the agent has every required skill at (at least) its minimum level."""
    skills = agent.config.skills
    return all(skills.get(name, -1) >= level for name, level in required.items())


def _idle_key(agent: Agent) -> datetime:
    return agent.idle_since or _NEVER


class Strategy(Protocol):
    """Orders candidate agents for one queue; :meth:`picked` tells it who got the call."""

    def order(self, candidates: Sequence[Agent], required: Mapping[str, int]) -> list[Agent]:
        """The candidates, best first."""

    def picked(self, agent: Agent) -> None:
        """The agent the router offered the call to (for strategies with memory)."""


class LongestIdle:
    """Longest idle first."""

    def order(self, candidates: Sequence[Agent], required: Mapping[str, int]) -> list[Agent]:
        """Candidates sorted by idle-since time, oldest first."""
        return sorted(candidates, key=_idle_key)

    def picked(self, agent: Agent) -> None:
        """Nothing to remember."""


class RoundRobin:
    """The member after the one picked last, in the queue's member order."""

    def __init__(self, members: Sequence[str]) -> None:
        self._members = list(members)
        self._last: str | None = None

    def order(self, candidates: Sequence[Agent], required: Mapping[str, int]) -> list[Agent]:
        """Candidates rotated so the member after the last pick comes first."""
        start = self._members.index(self._last) + 1 if self._last in self._members else 0
        rank = {m: (i - start) % len(self._members) for i, m in enumerate(self._members)}
        return sorted(candidates, key=lambda a: rank.get(a.id, len(self._members)))

    def picked(self, agent: Agent) -> None:
        """Remember the pick so the next call starts after it."""
        self._last = agent.id

    def set_members(self, members: Sequence[str]) -> None:
        """The queue's members changed (an agent added or removed through the API)."""
        self._members = list(members)


class FewestCalls:
    """Fewest calls answered first, then longest idle."""

    def order(self, candidates: Sequence[Agent], required: Mapping[str, int]) -> list[Agent]:
        """Candidates sorted by answered calls, then idle-since time."""
        return sorted(candidates, key=lambda a: (a.calls_answered, _idle_key(a)))

    def picked(self, agent: Agent) -> None:
        """Nothing to remember."""


class RandomOrder:
    """A random order; pass a seed for reproducible runs."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def order(self, candidates: Sequence[Agent], required: Mapping[str, int]) -> list[Agent]:
        """Candidates shuffled."""
        shuffled = list(candidates)
        self._rng.shuffle(shuffled)
        return shuffled

    def picked(self, agent: Agent) -> None:
        """Nothing to remember."""


class BestSkills:
    """Best match first (sum of levels over the required skills), then longest idle."""

    def order(self, candidates: Sequence[Agent], required: Mapping[str, int]) -> list[Agent]:
        """Candidates sorted by skill score (high first), then idle-since time."""

        def score(agent: Agent) -> int:
            return sum(agent.config.skills.get(name, 0) for name in required)

        return sorted(candidates, key=lambda a: (-score(a), _idle_key(a)))

    def picked(self, agent: Agent) -> None:
        """Nothing to remember."""


def make_strategy(name: str, members: Sequence[str], rng: random.Random) -> Strategy:
    """The strategy named in a queue's config."""
    if name == "longest_idle":
        return LongestIdle()
    if name == "round_robin":
        return RoundRobin(members)
    if name == "fewest_calls":
        return FewestCalls()
    if name == "random":
        return RandomOrder(rng)
    if name == "skills":
        return BestSkills()
    raise ValueError(f"unknown queue strategy {name!r}")
