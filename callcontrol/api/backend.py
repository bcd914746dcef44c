"""What the HTTP API asks of the domain. :class:`~callcontrol.api.facade.ApiFacade` implements
it; tests may fake it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from callcontrol.acd.directory import NewAgent
    from callcontrol.numbers import NumberPlan
    from callcontrol.recording.access import OpenRecording
    from callcontrol.store.call_search import CallFilter, Cursor
    from callcontrol.store.tables import RecordingRow


class ApiBackend(Protocol):
    """The domain as the API sees it (the API never talks to ARI)."""

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``(all links up, body)`` for ``GET /health``."""

    async def find_calls(self, where: CallFilter, limit: int, after: Cursor | None
                         ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of the calls ``where`` matches, newest first, and the next page's cursor."""

    async def call_detail(self, call_id: str, as_agent: str | None = None
                          ) -> dict[str, Any] | None:
        """One call with its timeline and recordings, or ``None``; ``as_agent``: refused
        (:class:`~callcontrol.errors.Forbidden`) unless that agent handled it."""

    async def customer_calls(self, where: CallFilter, limit: int, after: Cursor | None
                             ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of a customer's calls (flow path, masked inputs, disposition,
        recordings), newest first, and the next page's cursor."""

    def number_plan(self) -> NumberPlan:
        """How the site writes national numbers (E.164 normalisation)."""

    async def open_recording(self, recording_id: str, as_agent: str | None, by: str
                             ) -> OpenRecording:
        """A recording's file, open to serve; ``as_agent``: only of a call that agent
        handled (a refusal is on the call's timeline, by ``by``). Raises
        :class:`~callcontrol.errors.Refused` subclasses."""

    def recording_accessed(self, row: RecordingRow, by: str, byte_range: str | None,
                           status: int) -> None:
        """Put an access to a recording (or its refusal) on the call's timeline."""

    async def give_disposition(self, call_id: str, code: str, note: str | None, *, by: str,
                               as_agent: str | None) -> dict[str, Any]:
        """Give the call in wrap-up a disposition (see :mod:`callcontrol.acd.dispositions`)."""

    def flows_status(self) -> dict[str, Any]:
        """Which flows are live, their versions, and refused changes with findings."""

    def agents(self) -> list[dict[str, Any]]:
        """Every agent with its live state."""

    def queues(self) -> list[dict[str, Any]]:
        """Every queue with its live statistics."""

    def agent_action(self, agent_id: str, action: str, reason: str | None) -> dict[str, Any]:
        """Apply ``login``/``logout``/``pause``/``unpause`` to an agent; return its state."""

    def schedule_overrides(self) -> dict[str, Any]:
        """Active operator overrides of schedules, by schedule name."""

    def schedule_names(self) -> set[str]:
        """Every schedule an override may name: the config's shared ones and the live flows'
        own."""

    def set_schedule_override(
        self, name: str, state: Literal["open", "closed"], until: datetime | None, reason: str
    ) -> dict[str, Any]:
        """Force a schedule open or closed until ``until``; returns the active overrides."""

    def clear_schedule_override(self, name: str) -> bool:
        """Remove a schedule's override; ``False`` when it had none."""

    def agent_detail(self, agent_id: str) -> dict[str, Any]:
        """One agent's definition (``source``: config or api, no password) and live state;
        raises :class:`~callcontrol.acd.directory.AgentNotFound`."""

    async def create_agent(self, new: NewAgent) -> dict[str, Any]:
        """Create an agent (its headset exists in the PBX when this returns); its definition.
        Raises :class:`~callcontrol.acd.directory.DirectoryError` subclasses."""

    async def update_agent(self, agent_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change an API-managed agent (fields of ``AgentDirectory.update``)."""

    async def delete_agent(self, agent_id: str) -> None:
        """Remove an API-managed agent (logged out first)."""

    def agent_call_control(
        self, agent_id: str, action: str, target: str | None
    ) -> dict[str, Any]:
        """``hold``/``unhold``/``transfer`` (to ``target``) the agent's caller; the agent's
        state. Raises :class:`~callcontrol.errors.WrongState` when the agent has no call."""

    def queue_names(self) -> list[str]:
        """The configured queues."""

    async def queue_stats(self, queue: str, start: datetime, end: datetime) -> dict[str, Any]:
        """Figures of ``queue`` for callers that entered in ``[start, end)``."""

    def crm_customer(self, account: str) -> dict[str, Any] | None:
        """The demo CRM's record for ``account`` (``/demo/crm``), or ``None``."""

    async def recording_control(self, call_id: str, action: str, by: str,
                                agent_id: str | None = None) -> dict[str, Any]:
        """Start, stop, mute or unmute the recording of a call in progress (``agent_id``: only
        a call that agent is bridged with)."""
