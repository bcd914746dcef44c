"""Bearer tokens with roles (admin, supervisor, agent), stored hashed in a JSON file.

A token is shown once when created (``callcontrol tokens create``); the file keeps only its
SHA-256, its name, role, creation time and, for agent tokens, the agent it is bound to
(``tokens list`` shows those, never a token). A running daemon reads the file again when it
changes, so a token created or revoked (``tokens revoke NAME``) while it runs takes effect at
its next request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from callcontrol.private_files import write_private

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


@dataclass(frozen=True)
class TokenInfo:
    """What ``tokens list`` shows of a token (never the token itself)."""

    name: str
    role: Role
    agent_id: str | None
    created_at: str | None
    """ISO-8601 UTC; ``None`` for tokens made before it was recorded."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Tokens kept hashed in ``path`` (created with mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Principal] = {}
        self._created: dict[str, str | None] = {}
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
        self._created = {item["sha256"]: item.get("created_at") for item in raw}

    def create(self, name: str, role: Role, agent_id: str | None = None) -> str:
        """Create a token; return it in clear (the only time it is shown)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if role == "agent" and not agent_id:
            raise ValueError("an agent token must be bound to an agent (--agent ID)")
        token = secrets.token_urlsafe(32)
        self.reload()  # another process may have changed the file since it was read
        self._entries[_digest(token)] = Principal(name, role, agent_id)
        self._created[_digest(token)] = datetime.now(UTC).isoformat(timespec="seconds")
        self._save()
        return token

    def tokens(self) -> list[TokenInfo]:
        """Every token's name, role, agent and creation time, in the file's order."""
        self.reload()
        return [TokenInfo(p.name, p.role, p.agent_id, self._created.get(digest))
                for digest, p in self._entries.items()]

    def revoke(self, name: str) -> int:
        """Remove every token called ``name``; return how many were removed."""
        self.reload()
        gone = [digest for digest, p in self._entries.items() if p.name == name]
        for digest in gone:
            del self._entries[digest]
            del self._created[digest]
        if gone:
            self._save()
        return len(gone)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = [
            {"sha256": digest, "name": p.name, "role": p.role, "agent_id": p.agent_id,
             "created_at": self._created.get(digest)}
            for digest, p in self._entries.items()
        ]
        write_private(self.path, json.dumps(data, indent=1))
        self._stamp = self._file_stamp()

    def lookup(self, token: str) -> Principal | None:
        """The principal of ``token``, or ``None`` (the file is read again if it changed)."""
        if self._file_stamp() != self._stamp:
            self.reload()
        return self._entries.get(_digest(token))
