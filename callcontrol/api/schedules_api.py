"""Operator overrides of schedules: force one open or closed until a time, without YAML edits.

    GET    /api/schedules                    active overrides
    POST   /api/schedules/{name}/override    {"state": "open"|"closed", "until": ISO-8601|null,
                                              "reason": str}
    DELETE /api/schedules/{name}/override

Only a schedule that exists (shared in the config or local to a live flow) takes an override,
one per schedule, at most :data:`MAX_OVERRIDES` at once; ``until`` lies in the future and the
reason is at most :data:`MAX_REASON` characters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from callcontrol.api.context import BACKEND, Handler, json_object, require
from callcontrol.errors import ApiError

_FIELDS = {"state", "until", "reason"}
MAX_REASON = 200
MAX_OVERRIDES = 100


def parse_override(
    body: dict[str, Any],
) -> tuple[Literal["open", "closed"], datetime | None, str]:
    """Validate an override request: ``(state, until, reason)``."""
    state: Literal["open", "closed"]
    if body.get("state") == "open":
        state = "open"
    elif body.get("state") == "closed":
        state = "closed"
    else:
        raise ApiError(400, "invalid_body", "state must be 'open' or 'closed'",
                       {"field": "state"})
    until: datetime | None = None
    raw = body.get("until")
    if raw is not None:
        if not isinstance(raw, str):
            raise ApiError(400, "invalid_body", "until must be an ISO-8601 string",
                           {"field": "until"})
        try:
            until = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, "invalid_body", f"until is not an ISO-8601 time: {raw!r}",
                           {"field": "until"}) from None
        if until.tzinfo is None:
            raise ApiError(400, "invalid_body", "until needs a UTC offset (e.g. ...Z)",
                           {"field": "until"})
        if until <= datetime.now(UTC):
            raise ApiError(400, "invalid_body", "until lies in the past", {"field": "until"})
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise ApiError(400, "invalid_body",
                       f"reason must be a string of at most {MAX_REASON} characters",
                       {"field": "reason"})
    return state, until, reason


async def list_overrides(request: web.Request) -> web.Response:
    require(request, "supervisor")
    return web.json_response(request.app[BACKEND].schedule_overrides())


async def set_override(request: web.Request) -> web.Response:
    principal = require(request, "supervisor")
    name = request.match_info["name"]
    backend = request.app[BACKEND]
    if name not in backend.schedule_names():
        raise ApiError(404, "schedule_not_found", f"no schedule named {name[:64]!r}",
                       {"schedule": name[:64]})
    state, until, reason = parse_override(await json_object(request, _FIELDS))
    active = backend.schedule_overrides()
    if name not in active and len(active) >= MAX_OVERRIDES:
        raise ApiError(409, "too_many_overrides",
                       f"{MAX_OVERRIDES} schedules are overridden already; clear one first",
                       {"max": MAX_OVERRIDES})
    result = backend.set_schedule_override(name, state, until, reason or f"by {principal.name}")
    return web.json_response(result)


async def clear_override(request: web.Request) -> web.Response:
    require(request, "supervisor")
    name = request.match_info["name"]
    if not request.app[BACKEND].clear_schedule_override(name):
        raise ApiError(404, "override_not_found", f"schedule {name!r} has no override")
    return web.json_response({"schedule": name, "override": None})


SCHEDULE_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/schedules", list_overrides),
    ("POST", "/api/schedules/{name}/override", set_override),
    ("DELETE", "/api/schedules/{name}/override", clear_override),
]
