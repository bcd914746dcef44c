"""The interaction record: calls (filtered, paged), recordings, dispositions, customer history.

    GET  /api/calls?caller=&agent=&queue=&outcome=&disposition=&from=&to=&limit=&cursor=
                                              supervisor: newest first, one page
    GET  /api/calls/{call_id}                 supervisor, or an agent who handled the call:
                                              the call, its timeline and its recordings
    POST /api/calls/{call_id}/disposition     {"code": "1", "note": "..."}: the agent who wraps
                                              the call up (its own token), or a supervisor
    GET  /api/recordings/{recording_id}       supervisor, or an agent who handled the call:
    HEAD /api/recordings/{recording_id}       the WAV file, one byte range at a time if asked
    GET  /api/customers/{number}/calls        supervisor: a number's calls, newest first

Paging: ``limit`` (1 to 1000, default 20) and ``cursor``; a page that has more says where the
next one is in a ``Link: <...>; rel="next"`` header (the same query with the next ``cursor``).
Every recording access (and refusal) is on its call's timeline: who, the range, the status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

from aiohttp import web

from callcontrol.api.auth import Principal
from callcontrol.api.context import (
    BACKEND,
    Handler,
    error_response,
    json_object,
    require,
    time_parameter,
)
from callcontrol.api.ranges import UNSATISFIABLE, parse_range
from callcontrol.errors import ApiError
from callcontrol.numbers import BadNumber, normalize, stored_forms
from callcontrol.recording.access import CHUNK
from callcontrol.store.call_search import CallFilter, Cursor
from callcontrol.store.records import OUTCOMES

MAX_LIMIT = 1000
DEFAULT_LIMIT = 20
OBJECT_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
"""What a call or recording id looks like (anything else is refused before any lookup)."""
AGENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
DISPOSITION = re.compile(r"[0-9]{1,8}|missing")
CALL_FILTERS = ("caller", "agent", "queue", "outcome", "disposition", "from", "to")
PAGING = ("limit", "cursor")


def who(principal: Principal) -> str:
    """How a principal is named on a timeline: ``agent:ID`` for an agent token, else
    ``ROLE:TOKEN-NAME``."""
    if principal.role == "agent" and principal.agent_id:
        return f"agent:{principal.agent_id}"
    return f"{principal.role}:{principal.name}"


def _agent_scope(principal: Principal) -> str | None:
    """The agent an agent token is limited to (``None``: a supervisor or admin)."""
    return principal.agent_id if principal.role == "agent" else None


def _bad(parameter: str, value: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message,
                    {"parameter": parameter, "value": value[:64]})


def _object_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not OBJECT_ID.fullmatch(value) or value in (".", ".."):
        raise ApiError(400, f"invalid_{name}", f"{name} must be 1 to 128 letters, digits or "
                       "'._-'", {name: value[:128]})
    return value


# -- paging -----------------------------------------------------------------------------------


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad("limit", raw, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def encode_cursor(cursor: Cursor) -> str:
    """The opaque ``cursor`` parameter naming where a page ended."""
    raw = json.dumps([cursor.started_at.isoformat(), cursor.call_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The cursor of :func:`encode_cursor`; :class:`ValueError` when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        started, call_id = json.loads(raw)
        when = datetime.fromisoformat(started)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    if when.tzinfo is None or not isinstance(call_id, str) or not OBJECT_ID.fullmatch(call_id):
        raise ValueError("not a cursor")
    return Cursor(when, call_id)


def _cursor(request: web.Request) -> Cursor | None:
    raw = request.query.get("cursor")
    if raw is None:
        return None
    try:
        if len(raw) > 512:
            raise ValueError("too long")
        return decode_cursor(raw)
    except ValueError:
        raise _bad("cursor", raw, "cursor must be one a previous page's Link header gave"
                   ) from None


def _page(request: web.Request, items: list[dict[str, Any]], after: Cursor | None
          ) -> web.Response:
    response = web.json_response(items)
    if after is not None:
        url = request.rel_url.update_query(cursor=encode_cursor(after))
        response.headers["Link"] = f'<{url}>; rel="next"'
    return response


def _only(request: web.Request, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise ApiError(400, "invalid_parameter", f"unknown parameters: {', '.join(unknown)}",
                       {"parameter": unknown[0], "allowed": list(allowed)})


# -- calls ------------------------------------------------------------------------------------


def call_filter(request: web.Request) -> CallFilter:
    """The filters of ``GET /api/calls``, validated (400 ``invalid_parameter`` naming the
    first bad one)."""
    query = request.query
    caller = None
    if "caller" in query:
        try:
            number = normalize(query["caller"], request.app[BACKEND].number_plan())
        except BadNumber as exc:
            raise _bad("caller", query["caller"], f"caller: {exc}") from None
        caller = stored_forms(number, request.app[BACKEND].number_plan())
    checks = (("agent", AGENT_ID, "agent must be an agent id"),
              ("queue", QUEUE, "queue must be a queue name"),
              ("disposition", DISPOSITION, "disposition must be a code (digits) or 'missing'"))
    for name, pattern, message in checks:
        if name in query and not pattern.fullmatch(query[name]):
            raise _bad(name, query[name], message)
    outcome = query.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise _bad("outcome", outcome, f"outcome must be one of {', '.join(OUTCOMES)}")
    start, end = time_parameter(request, "from"), time_parameter(request, "to")
    if start is not None and end is not None and start >= end:
        raise _bad("from", query["from"], "from must be before to")
    return CallFilter(caller_forms=caller, agent_id=query.get("agent"),
                      queue=query.get("queue"), outcome=outcome,
                      disposition=query.get("disposition"), started_from=start,
                      started_to=end)


async def list_calls(request: web.Request) -> web.Response:
    """``GET /api/calls``."""
    require(request, "supervisor")
    _only(request, CALL_FILTERS + PAGING)
    where, limit, after = call_filter(request), _limit(request), _cursor(request)
    items, next_page = await request.app[BACKEND].find_calls(where, limit, after)
    return _page(request, items, next_page)


async def get_call(request: web.Request) -> web.Response:
    """``GET /api/calls/{call_id}``."""
    principal = require(request, "agent")
    call_id = _object_id(request, "call_id")
    call = await request.app[BACKEND].call_detail(call_id, _agent_scope(principal))
    if call is None:
        raise ApiError(404, "call_not_found", "no such call", {"call_id": call_id})
    return web.json_response(call)


async def set_disposition(request: web.Request) -> web.Response:
    """``POST /api/calls/{call_id}/disposition``."""
    principal = require(request, "agent")
    call_id = _object_id(request, "call_id")
    body = await json_object(request, {"code", "note"})
    code, note = body.get("code"), body.get("note")
    if not isinstance(code, str) or not re.fullmatch(r"[0-9]{1,8}", code):
        raise ApiError(400, "invalid_body", "the request body has invalid fields",
                       {"fields": {"code": "a disposition code: 1 to 8 digits, as a string"}})
    if note is not None and not isinstance(note, str):
        raise ApiError(400, "invalid_body", "the request body has invalid fields",
                       {"fields": {"note": "must be a string"}})
    result = await request.app[BACKEND].give_disposition(
        call_id, code, note, by=who(principal), as_agent=_agent_scope(principal))
    return web.json_response(result)


# -- recordings -------------------------------------------------------------------------------


async def get_recording(request: web.Request) -> web.StreamResponse:
    """``GET`` / ``HEAD /api/recordings/{recording_id}``: the file, or one range of it."""
    principal = require(request, "agent")
    recording_id = _object_id(request, "recording_id")
    backend = request.app[BACKEND]
    opened = await backend.open_recording(recording_id, _agent_scope(principal),
                                          who(principal))
    try:
        header = request.headers.get("Range")
        wanted = parse_range(header, opened.size)
        if wanted == UNSATISFIABLE:
            backend.recording_accessed(opened.row, who(principal), header, 416)
            refused = error_response(416, "range_not_satisfiable",
                                     "the range lies past the file's end",
                                     {"size": opened.size, "range": (header or "")[:64]})
            refused.headers["Content-Range"] = f"bytes */{opened.size}"
            return refused
        start, length = (0, opened.size) if wanted is None else (wanted.start, wanted.length)
        response = web.StreamResponse(status=200 if wanted is None else 206, headers={
            "Content-Type": "audio/wav", "Accept-Ranges": "bytes",
            "Content-Length": str(length), "Cache-Control": "private, no-store",
            "Content-Disposition": f'attachment; filename="{recording_id}.wav"'})
        if wanted is not None:
            response.headers["Content-Range"] = wanted.content_range(opened.size)
        backend.recording_accessed(opened.row, who(principal),
                                   header if wanted is not None else None, response.status)
        await response.prepare(request)
        if request.method != "HEAD":
            offset, end = start, start + length
            while offset < end:
                chunk = await asyncio.to_thread(opened.read, offset, min(CHUNK, end - offset))
                if not chunk:
                    break  # the file shrank meanwhile: the short body ends the connection
                await response.write(chunk)
                offset += len(chunk)
        await response.write_eof()
        return response
    finally:
        opened.close()


# -- customer history -------------------------------------------------------------------------


async def customer_calls(request: web.Request) -> web.Response:
    """``GET /api/customers/{number}/calls``."""
    require(request, "supervisor")
    _only(request, PAGING)
    raw = request.match_info["number"]
    plan = request.app[BACKEND].number_plan()
    try:
        number = normalize(raw, plan)
    except BadNumber as exc:
        raise ApiError(400, "invalid_number", str(exc), {"number": raw[:64]}) from None
    where = CallFilter(caller_forms=stored_forms(number, plan))
    items, next_page = await request.app[BACKEND].customer_calls(
        where, _limit(request), _cursor(request))
    response = _page(request, items, next_page)
    response.headers["X-Customer-Number"] = number
    return response


RECORD_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/calls", list_calls),
    ("GET", "/api/calls/{call_id}", get_call),
    ("POST", "/api/calls/{call_id}/disposition", set_disposition),
    ("GET", "/api/recordings/{recording_id}", get_recording),
    ("HEAD", "/api/recordings/{recording_id}", get_recording),
    ("GET", "/api/customers/{number}/calls", customer_calls),
]
