"""The OpenAPI document of the HTTP API (served at ``/api/openapi.json``).

A unit test checks that it names exactly the routes the server has.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERRORS = {
    400: "bad input: invalid_json (not JSON, or nested deeper than 16 levels), invalid_body "
         "(a field: wrong type, too long, unknown), invalid_parameter (a query parameter)",
    416: "range_not_satisfiable: the range starts past the file's end",
    413: "too_large: the body is larger than 64 KiB",
}


def _op(summary: str, role: str | None, ok: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
        errors: tuple[int, ...] = ()) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": ok or {}}}}
    }
    if role:
        responses["401"] = {"description": "no valid bearer token",
                            "content": {"application/json": {"schema": _ERROR}}}
        responses["403"] = {"description": f"needs the {role} role",
                            "content": {"application/json": {"schema": _ERROR}}}
    if body:
        errors = (*errors, 400, 413)
    for status in sorted(set(errors)):
        responses[str(status)] = {"description": _ERRORS.get(status, "error"),
                                  "content": {"application/json": {"schema": _ERROR}}}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if role:
        op["security"] = [{"bearer": []}]
        op["x-role"] = role
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": False,
                             "content": {"application/json": {"schema": body}}}
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_AGENT_ACTION_BODY = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": 64}},
    "additionalProperties": False,
}

_RECORDING_BODY = {
    "type": "object",
    "properties": {"action": {"enum": ["start", "stop", "mute", "unmute"]}},
    "required": ["action"],
    "additionalProperties": False,
}


def _created(op: dict[str, Any]) -> dict[str, Any]:
    op["responses"]["201"] = op["responses"].pop("200")
    op["requestBody"]["required"] = True
    return op


def _time_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string", "format": "date-time"},
            "description": "ISO-8601 with a UTC offset"}


_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
_SKILLS = {"type": "object", "maxProperties": 100,
           "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100}}
_PASSWORD = {"type": "string", "minLength": 8, "maxLength": 128, "writeOnly": True,
             "description": "headset digest password; never returned"}
_AGENT_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 255},
    "skills": _SKILLS,
    "queues": {"type": "array", "maxItems": 100,
               "items": {"type": "string", "minLength": 1, "maxLength": 64}},
    "wrap_up": {"type": "number", "minimum": 0, "maximum": 3600, "nullable": True},
}
_AGENT_CREATE = {
    "type": "object",
    "required": ["id", "name", "endpoint", "password"],
    "properties": {"id": _ID, "endpoint": {"type": "string",
                                           "pattern": "^[A-Za-z0-9_.+-]{1,64}$"},
                   "password": _PASSWORD, **_AGENT_FIELDS},
    "additionalProperties": False,
}
_AGENT_PATCH = {
    "type": "object",
    "properties": {"password": _PASSWORD, **_AGENT_FIELDS},
    "additionalProperties": False,
}
_AGENT = {
    "type": "object",
    "properties": {"id": _ID, "endpoint": {"type": "string"},
                   "source": {"type": "string", "enum": ["config", "api"]},
                   "state": {"type": "string"}, **_AGENT_FIELDS},
}
_TRANSFER = {
    "type": "object",
    "required": ["to"],
    "properties": {"to": {"type": "string", "pattern": "^(queue|agent|number):.+$",
                          "maxLength": 100,
                          "description": "queue:NAME, agent:ID or number:+E164; a number "
                                         "must match a pattern of security.outbound_allow "
                                         "the token's role may use (else 403 "
                                         "outbound_not_allowed)"}},
    "additionalProperties": False,
}

def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20},
           "calls per page"),
    _query("cursor", {"type": "string"}, "where the previous page ended, as its Link header "
           "gives it"),
]
_CALL_FILTERS = [
    _query("caller", {"type": "string"}, "the caller's number (normalised to E.164)"),
    _query("agent", {"type": "string"}, "an agent id"),
    _query("queue", {"type": "string"}, "a queue name"),
    _query("outcome", {"type": "string"}, "a call outcome"),
    _query("disposition", {"type": "string"}, "a wrap-up code, or missing"),
    _time_param("from"),
    _time_param("to"),
]
_RANGE = {"name": "Range", "in": "header", "schema": {"type": "string"},
          "description": "bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX (one range)"}
_DISPOSITION = {
    "type": "object",
    "required": ["code"],
    "properties": {"code": {"type": "string", "pattern": "^[0-9]{1,8}$"},
                   "note": {"type": "string", "maxLength": 1000}},
    "additionalProperties": False,
}


def _file(op: dict[str, Any]) -> dict[str, Any]:
    """A route answering a WAV file (200 whole, 206 one range)."""
    wav = {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}
    op["responses"]["200"] = {"description": "the whole file", "content": wav}
    op["responses"]["206"] = {"description": "one range of the file", "content": wav}
    return op


_OVERRIDE_BODY = {
    "type": "object",
    "required": ["state"],
    "properties": {
        "state": {"type": "string", "enum": ["open", "closed"]},
        "until": {"type": "string", "format": "date-time", "nullable": True,
                  "description": "in the future, with a UTC offset; null: until cleared"},
        "reason": {"type": "string", "maxLength": 200},
    },
    "additionalProperties": False,
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "callcontrol", "version": "1"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["id", "message"],
                        "properties": {
                            "id": {"type": "string"},
                            "message": {"type": "string"},
                            "details": {},
                        },
                    }
                },
            }
        },
    },
    "paths": {
        "/health": {"get": _op("Links (ari, ami, db, journal) and flow load state; 503 while "
                               "a link is down. Open on localhost.", None, errors=(503,))},
        "/api/openapi.json": {"get": _op("This document", None)},
        "/api/calls": {"get": _op(
            "Calls newest first, filtered, one page (next page: the Link header)", "supervisor",
            {"type": "array"}, [*_CALL_FILTERS, *_PAGING], errors=(400,))},
        "/api/calls/{call_id}": {"get": _op(
            "One call with its timeline and recordings (an agent token: a call its agent "
            "handled)", "agent", params=[_path_param("call_id")], errors=(400, 404))},
        "/api/calls/{call_id}/disposition": {"post": _op(
            "Give the call in wrap-up its wrap-up code (an agent token: the call its agent "
            "wraps up)", "agent", params=[_path_param("call_id")], body=_DISPOSITION,
            errors=(400, 404, 409))},
        "/api/recordings/{recording_id}": {
            "get": _file(_op("The recording's WAV file; one byte range with Range "
                             "(206 with Content-Range; 416 past the end). An agent token: a "
                             "call its agent handled. Every access is on the call's timeline",
                             "agent", params=[_path_param("recording_id"), _RANGE],
                             errors=(400, 404, 409, 410, 416))),
            "head": _file(_op("The recording's headers (size, ranges) without the body",
                              "agent", params=[_path_param("recording_id"), _RANGE],
                              errors=(400, 404, 409, 410, 416))),
        },
        "/api/customers/{number}/calls": {"get": _op(
            "A caller's history, newest first, one page (next page: the Link header): each "
            "call's flow path, masked inputs, queue, agent, outcome, disposition and "
            "recordings. The number is normalised to E.164 (docs/api.md)", "supervisor",
            {"type": "array"}, [_path_param("number"), *_PAGING], errors=(400,))},
        "/api/calls/{call_id}/recording": {"post": _op(
            "Start (on_demand), stop, mute or unmute a live call's recording (an agent "
            "token: the call it is bridged with); on the call's timeline with who asked",
            "agent", params=[_path_param("call_id")], body=_RECORDING_BODY,
            errors=(400, 404, 409))},
        "/api/flows": {"get": _op("Live flows, versions and refused changes", "supervisor")},
        "/api/agents": {"get": _op("Agents with their live state", "supervisor",
                                   {"type": "array"}),
                        "post": _created(_op("Create an agent (its PJSIP headset exists when "
                                             "this answers)", "admin", _AGENT,
                                             body=_AGENT_CREATE, errors=(400, 409, 502)))},
        "/api/agents/{agent_id}": {
            "get": _op("One agent: definition (no password) and live state (an agent "
                       "token: its own)", "agent", _AGENT,
                       params=[_path_param("agent_id")], errors=(404,)),
            "patch": _op("Change an API-managed agent", "admin", _AGENT,
                         params=[_path_param("agent_id")], body=_AGENT_PATCH,
                         errors=(400, 404, 409, 502)),
            "delete": _op("Remove an API-managed agent (logged out first)", "admin",
                          params=[_path_param("agent_id")], errors=(404, 409, 502)),
        },
        **{
            f"/api/agents/{{agent_id}}/{action}": {
                "post": _op(summary, "agent",
                            params=[_path_param("agent_id")], body=body,
                            errors=(400, 404, 409))
            }
            for action, summary, body in (
                ("hold", "Put the agent's caller on hold (music on hold)", None),
                ("unhold", "Take the agent's caller off hold", None),
                ("transfer", "Blind-transfer the agent's caller (an agent token: its own "
                             "call); to an outside number only through the role's "
                             "security.outbound_allow patterns (else 403 "
                             "outbound_not_allowed)", _TRANSFER),
            )
        },
        "/api/queues/{name}/stats": {
            "get": _op("Queue figures for callers that entered in [from, to) "
                       "(docs/queue-statistics.md); default: the last 24 hours", "supervisor",
                       params=[_path_param("name"), _time_param("from"), _time_param("to")],
                       errors=(400, 404))},
        "/api/queues": {"get": _op("Queues with live statistics", "supervisor",
                                   {"type": "array"})},
        **{
            f"/api/agents/{{agent_id}}/{action}": {
                "post": _op(f"Agent {action}", "agent", params=[_path_param("agent_id")],
                            body=_AGENT_ACTION_BODY, errors=(400, 404, 409))
            }
            for action in ("login", "logout", "pause", "unpause")
        },
        "/api/schedules": {"get": _op("Active operator overrides of schedules", "supervisor")},
        "/api/schedules/{name}/override": {
            "post": _op("Force a schedule open or closed until a time (a schedule of the "
                        "config or of a live flow: else 404 schedule_not_found; at most 100 "
                        "overridden at once: else 409 too_many_overrides)", "supervisor",
                        params=[_path_param("name")], body=_OVERRIDE_BODY, errors=(404, 409)),
            "delete": _op("Remove a schedule's override", "supervisor",
                          params=[_path_param("name")], errors=(404,)),
        },
        "/demo/crm/customers/{account}": {"get": _op(
            "Demo CRM record: off (404) unless http.demo_crm; then open to this machine only "
            "(403 for others)", None, params=[_path_param("account")], errors=(403, 404))},
    },
}
