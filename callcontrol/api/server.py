"""The aiohttp application: routes, bearer-token auth, JSON errors with stable ids."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from callcontrol.api.agents_api import AGENT_ROUTES
from callcontrol.api.auth import TokenStore
from callcontrol.api.backend import ApiBackend
from callcontrol.api.context import (
    BACKEND,
    DEMO_CRM,
    MAX_BODY_BYTES,
    OUTBOUND,
    PRINCIPAL,
    TOKENS,
    Handler,
    error_response,
    json_object,
    require,
)
from callcontrol.api.interaction_api import RECORD_ROUTES
from callcontrol.api.live_recording_api import RECORDING_ROUTES
from callcontrol.api.openapi import OPENAPI
from callcontrol.api.schedules_api import SCHEDULE_ROUTES
from callcontrol.config import OutboundAllow
from callcontrol.errors import (
    ApiError,
    CallControlError,
    Forbidden,
    Gone,
    InvalidRequest,
    Refused,
    UnknownObject,
    WrongState,
)
from callcontrol.logging import get_logger

log = get_logger("callcontrol.api")
MAX_REASON = 64
"""The longest pause reason (reasons are names from ``acd.pause_reasons``)."""

__all__ = ["BACKEND", "PRINCIPAL", "ROUTES", "TOKENS", "Handler", "build_app", "error_response",
           "require"]


REFUSAL_STATUS: dict[type[Refused], int] = {UnknownObject: 404, InvalidRequest: 400,
                                            WrongState: 409, Forbidden: 403, Gone: 410}
"""The HTTP status of each kind of domain refusal."""


def _is_loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into the JSON error shape; never leak a traceback."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error_id, exc.message, exc.details)
    except Refused as exc:
        status = REFUSAL_STATUS.get(type(exc), 400)
        return error_response(status, exc.error_id, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            return error_response(413, "too_large", "the request body is too large",
                                  {"max_bytes": MAX_BODY_BYTES})
        ids = {404: "not_found", 405: "method_not_allowed"}
        return error_response(exc.status, ids.get(exc.status, "http_error"), exc.reason)
    except CallControlError as exc:
        log.warning("api_domain_error", path=request.path, error=str(exc))
        return error_response(502 if exc.error_id.startswith("pbx") else 500, exc.error_id,
                              str(exc))
    except Exception:
        log.exception("api_internal_error", path=request.path)
        return error_response(500, "internal", "internal error")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a bearer token on ``/api``; ``/health`` is open on localhost only."""
    path = request.path
    open_paths = path == "/api/openapi.json" or path.startswith("/demo/")
    if path == "/health" and _is_loopback(request):
        open_paths = True
    if not open_paths:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        principal = (
            request.app[TOKENS].lookup(token.strip()) if scheme.lower() == "bearer" else None
        )
        if principal is None:
            return error_response(401, "unauthorized", "a valid bearer token is required")
        request[PRINCIPAL] = principal
    return await handler(request)


async def health(request: web.Request) -> web.Response:
    ok, body = request.app[BACKEND].health()
    return web.json_response(body, status=200 if ok else 503)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


async def list_flows(request: web.Request) -> web.Response:
    require(request, "supervisor")
    return web.json_response(request.app[BACKEND].flows_status())


async def list_agents(request: web.Request) -> web.Response:
    require(request, "supervisor")
    return web.json_response(request.app[BACKEND].agents())


async def list_queues(request: web.Request) -> web.Response:
    require(request, "supervisor")
    return web.json_response(request.app[BACKEND].queues())


async def agent_action(request: web.Request) -> web.Response:
    principal = require(request, "agent")
    agent_id = request.match_info["agent_id"]
    action = request.match_info["action"]
    if principal.role == "agent" and principal.agent_id != agent_id:
        raise ApiError(403, "forbidden", "an agent token acts only on its own agent")
    reason: str | None = None
    if request.can_read_body:
        body = await json_object(request, {"reason"})
        if "reason" in body and not (isinstance(body["reason"], str)
                                     and len(body["reason"]) <= MAX_REASON):
            raise ApiError(400, "invalid_body",
                           f"reason must be a string of at most {MAX_REASON} characters",
                           {"field": "reason"})
        reason = body.get("reason")
    result = request.app[BACKEND].agent_action(agent_id, action, reason)
    return web.json_response(result)


async def demo_crm(request: web.Request) -> web.Response:
    """The demo CRM: off unless ``http.demo_crm``; then for this machine only (the demo
    hotline's ``http`` step), as ``/health``."""
    if not request.app[DEMO_CRM]:
        raise ApiError(404, "not_found", "the demo CRM is off (http.demo_crm)")
    if not _is_loopback(request):
        raise ApiError(403, "forbidden", "the demo CRM answers this machine only")
    customer = request.app[BACKEND].crm_customer(request.match_info["account"])
    if customer is None:
        raise ApiError(404, "customer_not_found", "no such customer")
    return web.json_response(customer)


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/health", health),
    ("GET", "/api/openapi.json", openapi),
    ("GET", "/api/flows", list_flows),
    ("GET", "/api/agents", list_agents),
    ("GET", "/api/queues", list_queues),
    ("POST", "/api/agents/{agent_id}/{action:login|logout|pause|unpause}", agent_action),
    ("GET", "/demo/crm/customers/{account}", demo_crm),
    *AGENT_ROUTES,
    *SCHEDULE_ROUTES,
    *RECORDING_ROUTES,
    *RECORD_ROUTES,
]


def build_app(backend: ApiBackend, tokens: TokenStore, *,
              outbound: OutboundAllow | None = None, demo_crm: bool = False
              ) -> web.Application:
    """The aiohttp application serving the API for ``backend``; ``outbound``: the outside
    numbers each role may transfer callers to (default: none); ``demo_crm``: serve the demo
    CRM (to this machine only)."""
    app = web.Application(middlewares=[errors_middleware, auth_middleware],
                          client_max_size=MAX_BODY_BYTES)
    app[BACKEND] = backend
    app[TOKENS] = tokens
    app[OUTBOUND] = outbound or OutboundAllow()
    app[DEMO_CRM] = demo_crm
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app
