"""What every route module of the API shares: the application and request keys, the handler
type and the role check. Kept apart from :mod:`callcontrol.api.server` so route modules
(``agents_api``...) can import it while the server imports their route tables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any

from aiohttp import web

from callcontrol.api.auth import Principal, Role, TokenStore
from callcontrol.api.backend import ApiBackend
from callcontrol.config import OutboundAllow
from callcontrol.errors import ApiError

BACKEND = web.AppKey("backend", ApiBackend)
TOKENS = web.AppKey("tokens", TokenStore)
OUTBOUND = web.AppKey("outbound", OutboundAllow)
"""The toll-fraud guard: which outside numbers a token's role may transfer callers to."""
DEMO_CRM = web.AppKey("demo_crm", bool)
"""Whether ``/demo/crm`` answers (``http.demo_crm``)."""
PRINCIPAL = web.RequestKey("principal", Principal)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY_BYTES = 64 * 1024
"""The largest request body (a larger one: 413 ``too_large``)."""
MAX_JSON_DEPTH = 16
"""How deeply a JSON body may nest (no route needs more than 3)."""


def error_response(status: int, error_id: str, message: str, details: Any = None) -> web.Response:
    """The one JSON error shape: ``{error: {id, message, details}}``."""
    return web.json_response(
        {"error": {"id": error_id, "message": message, "details": details}}, status=status
    )


def time_parameter(request: web.Request, name: str) -> datetime | None:
    """The query parameter ``name`` as a time (ISO-8601 with a UTC offset, from 1970), or
    ``None`` when it is absent; else a 400 ``invalid_parameter`` error."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None or not 1970 <= value.year <= 9998:
        raise ApiError(400, "invalid_parameter",
                       f"{name} must be an ISO-8601 time from 1970 with a UTC offset (e.g. ...Z)",
                       {"parameter": name, "value": raw[:64]})
    return value


def require(request: web.Request, role: Role) -> Principal:
    """The request's principal, if it has at least ``role``; else a 403 error."""
    principal: Principal = request[PRINCIPAL]
    if not principal.at_least(role):
        raise ApiError(403, "forbidden", f"this needs the {role} role")
    return principal


async def json_object(request: web.Request, allowed: Collection[str] | None = None
                      ) -> dict[str, Any]:
    """The request's JSON body, which must be an object (with no field outside ``allowed``,
    when given); else a 400 error."""
    try:
        body = await request.json()
    except (ValueError, RecursionError, LookupError):
        # RecursionError: nested past the parser's stack; LookupError: an unknown charset
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    if _depth(body) > MAX_JSON_DEPTH:
        raise ApiError(400, "invalid_json", f"the request body nests deeper than "
                       f"{MAX_JSON_DEPTH} levels", {"max_depth": MAX_JSON_DEPTH})
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the request body must be a JSON object")
    unknown = set(body) - set(allowed) if allowed is not None else set()
    if unknown:
        raise ApiError(400, "invalid_body", f"unknown fields: {', '.join(sorted(unknown))}",
                       {"allowed": sorted(allowed or ())})
    return body


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar: 0), without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level + 1)
            if deepest > MAX_JSON_DEPTH:
                break
            stack += [(item, level + 1) for item in
                      (node.values() if isinstance(node, dict) else node)]
    return deepest
