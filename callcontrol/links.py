"""Health of the daemon's links to the outside (ARI, AMI, database), as ``/health`` shows it.

A :class:`LinkState` belongs to the task that owns the link; that task calls :meth:`mark_up`
and :meth:`mark_down` on transitions, and readers take a :meth:`snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callcontrol.clock import utcnow


@dataclass
class LinkState:
    """Whether a link is up, when it last went up and down, and how often it came back.

    ``reconnects`` counts the times the link came up again after having been up once.
    """

    name: str
    up: bool = False
    last_up: datetime | None = None
    last_down: datetime | None = None
    reconnects: int = 0
    last_error: str | None = None

    def mark_up(self, at: datetime | None = None) -> None:
        """Record that the link is up (counts a reconnect when it had been up before)."""
        if self.up:
            return
        if self.last_up is not None:
            self.reconnects += 1
        self.up = True
        self.last_up = at or utcnow()

    def mark_down(self, error: str | None = None, at: datetime | None = None) -> None:
        """Record that the link went down (``error`` says why, without secrets)."""
        if error is not None:
            self.last_error = error
        if not self.up:
            return
        self.up = False
        self.last_down = at or utcnow()

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view: ``up``, ISO-8601 ``last_up``/``last_down``, ``reconnects``..."""
        return {
            "up": self.up,
            "last_up": self.last_up.isoformat() if self.last_up else None,
            "last_down": self.last_down.isoformat() if self.last_down else None,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }
