"""Bearer tokens with roles (admin, supervisor, agent), stored hashed in a JSON file.

A token is shown once when created (``callcontrol tokens create``); the file keeps only its
SHA-256, its role and, for agent tokens, the agent it is bound to. A running daemon reads the
file again when it changes, so a token created (or removed) while it runs takes effect at its
next request.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["admin", "supervisor", "agent"]
ROLES: tuple[Role, ...] = ("admin", "supervisor", "agent")
RANK = {"agent": 1, "supervisor": 2, "admin": 3}


@dataclass(frozen=True)
class Principal:
    """Who made a request."""

    name: str
    role: Role
    agent_id: str | None = None

    def at_least(self, role: Role) -> bool:
        """Whether this principal's role is ``role`` or above."""
        return RANK[self.role] >= RANK[role]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Tokens kept hashed in ``path`` (created with mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Principal] = {}
        self._stamp: tuple[int, int] | None = None
        self.reload()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return info.st_mtime_ns, info.st_size

    def reload(self) -> None:
        """Read the token file again (missing file: no tokens)."""
        self._stamp = self._file_stamp()
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            raw = []
        self._entries = {
            item["sha256"]: Principal(item["name"], item["role"], item.get("agent_id"))
            for item in raw
        }

    def create(self, name: str, role: Role, agent_id: str | None = None) -> str:
        """Create a token; return it in clear (the only time it is shown)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if role == "agent" and not agent_id:
            raise ValueError("an agent token must be bound to an agent (--agent ID)")
        token = secrets.token_urlsafe(32)
        self._entries[_digest(token)] = Principal(name, role, agent_id)
        self._save()
        return token

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = [
            {"sha256": digest, "name": p.name, "role": p.role, "agent_id": p.agent_id}
            for digest, p in self._entries.items()
        ]
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        tmp.replace(self.path)
        self._stamp = self._file_stamp()

    def lookup(self, token: str) -> Principal | None:
        """The principal of ``token``, or ``None`` (the file is read again if it changed)."""
        if self._file_stamp() != self._stamp:
            self.reload()
        return self._entries.get(_digest(token))
