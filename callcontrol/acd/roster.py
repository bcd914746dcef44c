"""The agents as the daemon runs them: the roster, headset reachability, agent actions.

    the agent directory (API)          --> add_agent / update_agent / remove_agent
    headset reachability (AMI adapter) --> on_headset / sync_headsets --> board.set_reachable
    the HTTP API                       --> agents_json, agent_action, call_control
    the call side's ``dial`` step       --> dial_endpoint / ringing / connected / released
                                           (:class:`callcontrol.calls.dial.DialAgents`)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callcontrol.acd.agents import BUSY_STATES, AgentState, AgentStateError
from callcontrol.acd.router import Acd
from callcontrol.calls.dial import DialRefused
from callcontrol.config import AgentConfig
from callcontrol.errors import CallControlError, InvalidRequest, UnknownObject, WrongState
from callcontrol.logging import get_logger
from callcontrol.telephony import HeadsetReachability, HeadsetStatus

_log = get_logger(__name__)


class AgentRoster:
    """The ACD's agents, their headsets and what may be asked of them."""

    def __init__(self, core: Acd, contacts: HeadsetStatus | None) -> None:
        self.core = core
        self.contacts = contacts
        self._endpoints = {agent.config.endpoint for agent in core.board.agents.values()}

    # -- the roster (agents managed through the HTTP API) ----------------------------------

    async def add_agent(self, config: AgentConfig) -> None:
        """Add a logged-out agent; its headset counts as registered only if AMI lists it."""
        reachable = False
        if self.contacts is not None:
            try:
                reachability = await self.contacts.headset_reachability()
            except CallControlError as exc:
                _log.warning("contact_status_failed", error=str(exc))
            else:
                reachable = reachability.get(config.endpoint, False)
        self.core.add_agent(config, reachable=reachable)
        self._endpoints.add(config.endpoint)

    def update_agent(self, config: AgentConfig) -> None:
        """Apply new settings (name, skills, queues, wrap-up) to an agent."""
        self.core.update_agent(config)

    def remove_agent(self, agent_id: str) -> None:
        """Log an agent out (refused while it rings or talks) and remove it."""
        agent = self.core.board.get(agent_id)
        if agent.state in BUSY_STATES:
            raise AgentStateError(f"agent {agent_id} is {agent.state}")
        if agent.state is not AgentState.LOGGED_OUT:
            self.core.board.logout(agent_id)
        self.core.remove_agent(agent_id)
        self._endpoints.discard(agent.config.endpoint)

    def call_control(self, agent_id: str, action: str, target: str | None = None) -> None:
        """``hold``, ``unhold`` or ``transfer`` (to ``target``) the caller bridged with an agent.

        Raises :class:`AgentStateError` when the agent is not bridged with a caller.
        """
        if action == "hold":
            self.core.hold(agent_id)
        elif action == "unhold":
            self.core.unhold(agent_id)
        elif action == "transfer" and target is not None:
            self.core.transfer(agent_id, target)
        else:
            raise ValueError(f"unknown call control {action!r}")

    # -- headset reachability ---------------------------------------------------------------

    async def on_headset(self, event: HeadsetReachability) -> None:
        """A headset's contact changed: re-read the truth and update its reachability."""
        endpoint = event.endpoint
        if endpoint not in self._endpoints:
            return
        reachable = event.reachable
        if not reachable and self.contacts is not None:
            # A contact replaced by a new registration is "Removed" after its successor was
            # "Created": ask for the endpoint's contacts as they are now.
            reachable = (await self.contacts.headset_reachability()).get(endpoint, False)
        self.core.board.set_reachable(endpoint, reachable)

    async def sync_headsets(self) -> None:
        """After every PBX (re)connect: set every headset's reachability from its contacts."""
        if self.contacts is None:
            return
        reachability = await self.contacts.headset_reachability()
        for endpoint in self._endpoints:
            self.core.board.set_reachable(endpoint, reachability.get(endpoint, False))

    # -- agent actions (HTTP API) ---------------------------------------------------------

    def agents_json(self) -> list[dict[str, Any]]:
        """Every agent with its live state."""
        return [agent.snapshot() for agent in self.core.board.agents.values()]

    def agent_action(self, agent_id: str, action: str, reason: str | None) -> dict[str, Any]:
        """``login``/``logout``/``pause``/``unpause`` an agent; returns its state."""
        board = self.core.board
        if agent_id not in board.agents:
            raise UnknownObject("agent_not_found", "no such agent", {"agent_id": agent_id})
        if action == "pause":
            reason = reason or board.pause_reasons[0]
            if reason not in board.pause_reasons:
                raise InvalidRequest("invalid_reason", f"unknown pause reason {reason!r}",
                                     {"allowed": list(board.pause_reasons)})
        operations: dict[str, Callable[[], AgentState]] = {
            "login": lambda: board.login(agent_id),
            "logout": lambda: board.logout(agent_id),
            "pause": lambda: board.pause(agent_id, reason or ""),
            "unpause": lambda: board.unpause(agent_id),
        }
        operation = operations.get(action)
        if operation is None:
            raise InvalidRequest("invalid_action", f"unknown agent action {action!r}")
        try:
            operation()
        except AgentStateError as exc:
            raise WrongState("agent_state", str(exc),
                             {"agent_id": agent_id, "state": board.agents[agent_id].state.value}
                             ) from None
        return board.agents[agent_id].snapshot()

    # -- the dial step (callcontrol.calls.dial.DialAgents) ------------------------------------

    def dial_endpoint(self, agent_id: str) -> str:
        """The endpoint of a free agent; :class:`DialRefused` for an unknown or busy one."""
        agent = self.core.board.agents.get(agent_id)
        if agent is None:
            raise DialRefused("failed", "unknown agent")
        if agent.state is not AgentState.AVAILABLE or not agent.reachable:
            raise DialRefused("busy", f"agent {agent.state}")
        return f"PJSIP/{agent.config.endpoint}"

    def ringing(self, agent_id: str, call_id: str) -> None:
        """The agent is rung by a dial step of ``call_id``."""
        self.core.board.offer(agent_id, call_id, "")

    def connected(self, agent_id: str) -> None:
        """The dialed agent answered."""
        self.core.board.connected(agent_id)

    def released(self, agent_id: str) -> None:
        """The dial is over: stop ringing, or end the call (with the agent's wrap-up)."""
        agent = self.core.board.agents[agent_id]
        if agent.state is AgentState.RINGING:
            self.core.board.ring_cancelled(agent_id)
        elif agent.state is AgentState.ON_CALL:
            wrap = agent.config.wrap_up
            self.core.board.call_ended(agent_id, wrap if wrap is not None else 0.0)
