"""The agent directory: agents of the config file plus agents managed through the HTTP API.

    config agents (read-only here)      --+
    ``agents`` table + secret files     --+--> roster (the ACD) and headsets (PBX include file)

Agents of the config file are defined there and cannot be changed through the API. An agent
created through the API is one row of the ``agents`` table; its headset password is kept out of
the database, the logs and every API answer: it goes to a mode-0600 file in
``acd.agent_secrets_dir`` named by the row (Asterisk's digest auth needs the password in clear
to render the PJSIP auth, so it cannot be stored hashed). Rows are written like every other
record, through the journal writer (:class:`~callcontrol.store.records.AgentSaved`,
:class:`~callcontrol.store.records.AgentRemoved`). Each change runs under one lock, in this
order: secret file, then the PBX (include file and res_pjsip reload), then the ACD, then the
row; a create whose PBX step fails is rolled back (no row was written).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.clock import utcnow
from callcontrol.config import AgentConfig, Config, SecretRef
from callcontrol.errors import CallControlError
from callcontrol.logging import get_logger
from callcontrol.store.agents import load_agents
from callcontrol.store.records import AgentRemoved, AgentSaved, InteractionLog, new_id

_log = get_logger(__name__)

EDITABLE = frozenset({"name", "password", "skills", "queues", "wrap_up"})
"""Fields a PATCH may change (id and endpoint are fixed)."""


class DirectoryError(CallControlError):
    """A change to the agent directory was refused."""


class AgentExists(DirectoryError):
    """An agent with this id already exists."""

    error_id = "agent_exists"


class EndpointInUse(DirectoryError):
    """Another agent or a caller source already uses this SIP endpoint."""

    error_id = "endpoint_exists"


class AgentNotFound(DirectoryError):
    """No agent has this id."""

    error_id = "agent_not_found"


class AgentReadOnly(DirectoryError):
    """The agent is defined in the config file: change it there."""

    error_id = "agent_in_config"


class AgentBusy(DirectoryError):
    """The agent rings or talks: it cannot be removed now."""

    error_id = "agent_busy"


@dataclass(frozen=True)
class NewAgent:
    """A validated request to create an agent."""

    id: str
    name: str
    endpoint: str
    password: SecretStr
    skills: Mapping[str, int]
    queues: Sequence[str]
    wrap_up: float | None = None


class Roster(Protocol):
    """The live ACD as the directory changes it (:class:`~callcontrol.acd.service.AcdService`)."""

    async def add_agent(self, config: AgentConfig) -> None:
        """Add a logged-out agent."""

    def update_agent(self, config: AgentConfig) -> None:
        """Apply new settings to an agent."""

    def remove_agent(self, agent_id: str) -> None:
        """Remove an agent (refused while it rings or talks)."""


Headsets = Callable[[Mapping[str, str]], Awaitable[None]]
"""Makes the PBX know exactly these headsets (endpoint -> password) of API-managed agents."""


class AgentDirectory:
    """Config agents plus API-managed agents (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        engine: AsyncEngine,
        log: InteractionLog,
        roster: Roster,
        headsets: Headsets,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._engine = engine
        self._log = log
        self._roster = roster
        self._headsets = headsets
        self._clock = clock
        self.secrets_dir = config.path(config.acd.agent_secrets_dir)
        self._config_agents = {a.id: a for a in config.agents}
        self._reserved = {a.endpoint for a in config.agents} | {c.id for c in config.callers}
        self._managed: dict[str, AgentConfig] = {}
        self._saved: dict[str, AgentSaved] = {}  # every stored row, loaded or not
        self._lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the API-managed agents into the ACD and write the PBX include file (an agent
        whose secret file is missing is left out and logged)."""
        for row in await load_agents(self._engine):
            self._saved[row.agent_id] = row
            if row.agent_id in self._config_agents or row.endpoint in self._reserved:
                _log.warning("api_agent_shadowed_by_config", agent_id=row.agent_id)
                continue
            try:
                agent = self._to_config(row)
            except CallControlError as exc:
                _log.error("api_agent_not_loaded", agent_id=row.agent_id, error=str(exc))
                continue
            await self._roster.add_agent(agent)
            self._managed[agent.id] = agent
        _log.info("agent_directory_loaded", config=len(self._config_agents),
                  api=len(self._managed))

    async def sync_pbx(self) -> None:
        """Make the PBX know the API-managed headsets (after every PBX (re)connect)."""
        async with self._lock:
            await self._headsets(self._accounts())

    # -- reading ----------------------------------------------------------------------------

    def source(self, agent_id: str) -> str | None:
        """``config``, ``api``, or ``None`` for an unknown agent."""
        if agent_id in self._config_agents:
            return "config"
        if agent_id in self._managed:
            return "api"
        return None

    def describe(self, agent_id: str) -> dict[str, Any]:
        """An agent's definition, JSON-ready and without its password."""
        agent = self._config_agents.get(agent_id) or self._managed.get(agent_id)
        if agent is None:
            raise AgentNotFound(f"no agent {agent_id!r}")
        return {
            "id": agent.id,
            "name": agent.name,
            "endpoint": agent.endpoint,
            "skills": dict(agent.skills),
            "queues": list(agent.queues),
            "wrap_up": agent.wrap_up,
            "source": self.source(agent_id),
        }

    # -- changes ----------------------------------------------------------------------------

    async def create(self, new: NewAgent) -> dict[str, Any]:
        """Create an agent: secret file, row, PBX headset, then the ACD (logged out)."""
        async with self._lock:
            if new.id in self._config_agents or new.id in self._managed:
                raise AgentExists(f"agent {new.id!r} already exists")
            if new.endpoint in self._reserved or any(
                a.endpoint == new.endpoint for a in self._managed.values()
            ):
                raise EndpointInUse(f"endpoint {new.endpoint!r} is already in use")
            if new.id in self._saved or any(
                r.endpoint == new.endpoint for r in self._saved.values()
            ):  # a stored row that was not loaded (its secret file is missing)
                raise AgentExists(f"agent {new.id!r} or endpoint {new.endpoint!r} exists")
            secret = self._write_secret(new.id, new.password)
            row = AgentSaved(agent_id=new.id, at=self._clock(), name=new.name,
                             endpoint=new.endpoint, password_file=str(secret),
                             skills=dict(new.skills), queues=list(new.queues),
                             wrap_up=new.wrap_up)
            agent = self._to_config(row)
            try:
                await self._headsets({**self._accounts(), agent.endpoint:
                                      agent.password.value.get_secret_value()})
                await self._roster.add_agent(agent)
            except BaseException:
                secret.unlink(missing_ok=True)
                with contextlib.suppress(CallControlError):
                    await self._headsets(self._accounts())
                raise
            self._save(row)
            self._managed[agent.id] = agent
            _log.info("agent_created", agent_id=agent.id, endpoint=agent.endpoint)
            return self.describe(agent.id)

    async def update(self, agent_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change an API-managed agent's ``name``, ``password``, ``skills``, ``queues`` or
        ``wrap_up`` (``changes`` holds validated values; ``password`` a :class:`SecretStr`)."""
        unknown = set(changes) - EDITABLE
        if unknown:
            raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
        async with self._lock:
            self._managed_agent(agent_id)
            fields = {k: v for k, v in changes.items() if k != "password"}
            if "password" in changes:
                self._write_secret(agent_id, changes["password"])
            copies: dict[str, Any] = {name: dict(value) if name == "skills"
                                      else list(value) if name == "queues" else value
                                      for name, value in fields.items()}
            row = replace(self._saved[agent_id], **copies, at=self._clock(), record_id=new_id())
            agent = self._to_config(row)
            self._save(row)
            self._managed[agent_id] = agent
            if "password" in changes:
                await self._headsets(self._accounts())
            if fields:
                self._roster.update_agent(agent)
            _log.info("agent_updated", agent_id=agent_id, fields=sorted(changes))
            return self.describe(agent_id)

    async def delete(self, agent_id: str) -> None:
        """Remove an API-managed agent (logged out first; refused while it rings or talks)."""
        async with self._lock:
            agent = self._managed_agent(agent_id)
            try:
                self._roster.remove_agent(agent_id)
            except CallControlError as exc:
                raise AgentBusy(str(exc)) from None
            del self._managed[agent_id]
            del self._saved[agent_id]
            self._log.append(AgentRemoved(agent_id=agent_id, at=self._clock()))
            if agent.password.file is not None:
                agent.password.file.unlink(missing_ok=True)
            _log.info("agent_deleted", agent_id=agent_id)
            await self._headsets(self._accounts())

    # -- internals --------------------------------------------------------------------------

    def _managed_agent(self, agent_id: str) -> AgentConfig:
        if agent_id in self._config_agents:
            raise AgentReadOnly(f"agent {agent_id!r} is defined in the config file")
        agent = self._managed.get(agent_id)
        if agent is None:
            raise AgentNotFound(f"no agent {agent_id!r}")
        return agent

    def _accounts(self) -> dict[str, str]:
        return {a.endpoint: a.password.value.get_secret_value() for a in self._managed.values()}

    def _write_secret(self, agent_id: str, password: SecretStr) -> Path:
        self.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.secrets_dir / agent_id
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password.get_secret_value() + "\n")
        tmp.replace(path)
        return path

    def _save(self, row: AgentSaved) -> None:
        self._saved[row.agent_id] = row
        self._log.append(row)

    def _to_config(self, row: AgentSaved) -> AgentConfig:
        password = SecretRef(file=Path(row.password_file))
        password.load(self._config.base_dir, {})
        return AgentConfig(id=row.agent_id, name=row.name, endpoint=row.endpoint,
                           password=password, skills=dict(row.skills), queues=list(row.queues),
                           wrap_up=row.wrap_up)
