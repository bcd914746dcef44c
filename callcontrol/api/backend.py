"""What the HTTP API asks of the domain. The app implements it; tests may fake it."""

from __future__ import annotations

from typing import Any, Protocol


class ApiBackend(Protocol):
    """The domain as the API sees it (the API never talks to ARI)."""

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(all links up, body)`` for ``GET /health``."""

    async def recent_calls(self, limit: int) -> list[dict[str, Any]]:
        """The newest calls, newest first."""

    async def call_detail(self, call_id: str) -> dict[str, Any] | None:
        """One call with its timeline, or ``None``."""

    def flows_status(self) -> dict[str, Any]:
        """Which flows are live, their versions, and refused changes with findings."""

    def agents(self) -> list[dict[str, Any]]:
        """Every agent with its live state."""

    def queues(self) -> list[dict[str, Any]]:
        """Every queue with its live statistics."""

    def agent_action(self, agent_id: str, action: str, reason: str | None) -> dict[str, Any]:
        """Apply ``login``/``logout``/``pause``/``unpause`` to an agent; return its state."""

    def crm_customer(self, account: str) -> dict[str, Any] | None:
        """The demo CRM's record for ``account`` (``/demo/crm``), or ``None``."""
