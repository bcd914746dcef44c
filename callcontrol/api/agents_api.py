"""Agents managed through the HTTP API, in-call controls and queue statistics over a period.

    POST   /api/agents                       admin: create (body: AgentCreate)
    GET    /api/agents/{agent_id}            supervisor, or the agent itself: definition + state
    PATCH  /api/agents/{agent_id}            admin: change name, password, skills, queues, wrap_up
    DELETE /api/agents/{agent_id}            admin: remove (logged out first)
    POST   /api/agents/{agent_id}/hold       the agent itself, supervisor or admin
    POST   /api/agents/{agent_id}/unhold
    POST   /api/agents/{agent_id}/transfer   {"to": "queue:NAME" | "agent:ID" | "number:+E164"}
    GET    /api/queues/{name}/stats?from=&to=  supervisor: figures (docs/queue-statistics.md)

Passwords are write-only: no answer and no log line carries them. A transfer to an outside
number passes the toll-fraud guard first: the number must match a pattern the token's role may
use (``security.outbound_allow``), else 403 ``outbound_not_allowed``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from callcontrol.acd.directory import (
    AgentBusy,
    AgentExists,
    AgentNotFound,
    AgentReadOnly,
    DirectoryError,
    EndpointInUse,
    NewAgent,
)
from callcontrol.api.auth import Principal
from callcontrol.api.context import (
    BACKEND,
    OUTBOUND,
    Handler,
    json_object,
    require,
    time_parameter,
)
from callcontrol.errors import ApiError
from callcontrol.pbx.agents_conf import UNSAFE_SECRET

_STATUS: dict[type[DirectoryError], int] = {
    AgentExists: 409,
    EndpointInUse: 409,
    AgentReadOnly: 409,
    AgentBusy: 409,
    AgentNotFound: 404,
}
M = TypeVar("M", bound=BaseModel)
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
Level = Annotated[int, Field(strict=True, ge=0, le=100)]
WrapUp = Annotated[float, Field(strict=True, ge=0, le=3600)]
Skills = dict[Annotated[str, Field(min_length=1, max_length=64)], Level]
Queues = list[Annotated[str, Field(min_length=1, max_length=64)]]
MAX_ITEMS = 100
"""The most skills or queues one agent may have."""


def _password(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if not 8 <= len(text) <= 128:
        raise ValueError("must be 8 to 128 characters long")
    if UNSAFE_SECRET.search(text):
        raise ValueError("must not hold ';', '[', ']' or white space")
    return value


class AgentCreate(BaseModel):
    """The body of ``POST /api/agents``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1, max_length=255)
    endpoint: str = Field(pattern=r"^[A-Za-z0-9_.+-]{1,64}$")
    password: SecretStr
    skills: Skills = Field(default_factory=dict, max_length=MAX_ITEMS)
    queues: Queues = Field(default_factory=list, max_length=MAX_ITEMS)
    wrap_up: WrapUp | None = None

    _check_password = field_validator("password")(_password)


class AgentPatch(BaseModel):
    """The body of ``PATCH /api/agents/{agent_id}`` (id and endpoint cannot change)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=255)
    password: SecretStr | None = None
    skills: Skills | None = Field(default=None, max_length=MAX_ITEMS)
    queues: Queues | None = Field(default=None, max_length=MAX_ITEMS)
    wrap_up: WrapUp | None = None

    @field_validator("password")
    @classmethod
    def _check_password(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _password(value)


class TransferBody(BaseModel):
    """The body of ``POST /api/agents/{agent_id}/transfer``."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=r"^(queue|agent|number):.+$", max_length=100)


def _invalid(fields: dict[str, str]) -> ApiError:
    return ApiError(400, "invalid_body", "the request body has invalid fields",
                    {"fields": fields})


def _parse(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for err in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "body"
            message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            fields.setdefault(where, message)
        raise _invalid(fields) from None


def _check_queues(request: web.Request, queues: list[str] | None) -> None:
    if queues is None:
        return
    known = set(request.app[BACKEND].queue_names())
    unknown = [q for q in queues if q not in known]
    if unknown:
        raise _invalid({"queues": f"unknown queues: {', '.join(unknown)}"})


def _domain(exc: DirectoryError, agent_id: str) -> ApiError:
    return ApiError(_STATUS.get(type(exc), 409), exc.error_id, str(exc), {"agent_id": agent_id})


def _self_or_supervisor(request: web.Request, agent_id: str) -> Principal:
    principal = require(request, "agent")
    if principal.role == "agent" and principal.agent_id != agent_id:
        raise ApiError(403, "forbidden", "an agent token acts only on its own agent")
    return principal


def guard_outbound_transfer(request: web.Request, principal: Principal, number: str) -> None:
    """The toll-fraud guard: refuse (403) a transfer to an outside number the principal's role
    may not reach (``security.outbound_allow``; nothing by default)."""
    if not request.app[OUTBOUND].permits_transfer(principal.role, number):
        raise ApiError(403, "outbound_not_allowed",
                       f"the {principal.role} role may not transfer calls to {number}",
                       {"to": f"number:{number}", "role": principal.role,
                        "setting": f"security.outbound_allow.{principal.role}"})


async def create_agent(request: web.Request) -> web.Response:
    """``POST /api/agents``."""
    require(request, "admin")
    body = _parse(AgentCreate, await json_object(request))
    _check_queues(request, body.queues)
    new = NewAgent(id=body.id, name=body.name, endpoint=body.endpoint, password=body.password,
                   skills=body.skills, queues=body.queues, wrap_up=body.wrap_up)
    try:
        result = await request.app[BACKEND].create_agent(new)
    except DirectoryError as exc:
        raise _domain(exc, body.id) from None
    return web.json_response(result, status=201)


async def get_agent(request: web.Request) -> web.Response:
    """``GET /api/agents/{agent_id}``."""
    agent_id = request.match_info["agent_id"]
    _self_or_supervisor(request, agent_id)
    try:
        return web.json_response(request.app[BACKEND].agent_detail(agent_id))
    except DirectoryError as exc:
        raise _domain(exc, agent_id) from None


async def update_agent(request: web.Request) -> web.Response:
    """``PATCH /api/agents/{agent_id}``."""
    require(request, "admin")
    agent_id = request.match_info["agent_id"]
    body = _parse(AgentPatch, await json_object(request))
    changes = body.model_dump(exclude_unset=True)
    if "password" in changes:
        changes["password"] = body.password
    nulls = [k for k, v in changes.items() if v is None and k != "wrap_up"]
    if nulls:
        raise _invalid(dict.fromkeys(nulls, "must not be null"))
    if not changes:
        raise _invalid({"body": "nothing to change"})
    _check_queues(request, body.queues)
    try:
        result = await request.app[BACKEND].update_agent(agent_id, changes)
    except DirectoryError as exc:
        raise _domain(exc, agent_id) from None
    return web.json_response(result)


async def delete_agent(request: web.Request) -> web.Response:
    """``DELETE /api/agents/{agent_id}``."""
    require(request, "admin")
    agent_id = request.match_info["agent_id"]
    try:
        await request.app[BACKEND].delete_agent(agent_id)
    except DirectoryError as exc:
        raise _domain(exc, agent_id) from None
    return web.json_response({"id": agent_id, "deleted": True})


async def call_control(request: web.Request) -> web.Response:
    """``POST /api/agents/{agent_id}/hold|unhold|transfer``."""
    agent_id = request.match_info["agent_id"]
    action = request.match_info["action"]
    principal = _self_or_supervisor(request, agent_id)
    target: str | None = None
    if action == "transfer":
        target = _parse(TransferBody, await json_object(request)).to
        kind, _, value = target.partition(":")
        if kind == "number" and not E164.fullmatch(value):
            raise _invalid({"to": "a number must be E.164: '+' then up to 15 digits"})
        if kind == "number":
            guard_outbound_transfer(request, principal, value)
        if kind == "queue" and value not in request.app[BACKEND].queue_names():
            raise _invalid({"to": f"unknown queue {value!r}"})
        if kind == "agent" and value == agent_id:
            raise _invalid({"to": "an agent cannot transfer a call to itself"})
    elif request.can_read_body and await request.read():
        raise _invalid({"body": f"{action} takes no body"})
    try:
        result = request.app[BACKEND].agent_call_control(agent_id, action, target)
    except DirectoryError as exc:
        raise _domain(exc, agent_id) from None
    return web.json_response(result)


async def queue_stats(request: web.Request) -> web.Response:
    """``GET /api/queues/{name}/stats?from=&to=`` (default: the last 24 hours)."""
    require(request, "supervisor")
    name = request.match_info["name"]
    backend = request.app[BACKEND]
    end = time_parameter(request, "to") or datetime.now().astimezone()
    start = time_parameter(request, "from") or end - timedelta(days=1)
    if start >= end:
        raise ApiError(400, "invalid_parameter", "from must be before to",
                       {"parameter": "from"})
    if name not in backend.queue_names():
        raise ApiError(404, "queue_not_found", "no such queue", {"queue": name})
    return web.json_response(await backend.queue_stats(name, start, end))


AGENT_ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/api/agents", create_agent),
    ("GET", "/api/agents/{agent_id}", get_agent),
    ("PATCH", "/api/agents/{agent_id}", update_agent),
    ("DELETE", "/api/agents/{agent_id}", delete_agent),
    ("POST", "/api/agents/{agent_id}/{action:hold|unhold|transfer}", call_control),
    ("GET", "/api/queues/{name}/stats", queue_stats),
]
