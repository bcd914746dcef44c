"""``POST /api/calls/{call_id}/recording``: start, stop, mute or unmute a live call's recording.

Body ``{"action": "start" | "stop" | "mute" | "unmute"}``. Supervisors and admins act on any
call in progress; an agent only on the call it is bridged with (403 otherwise). ``start``
records an ``on_demand`` leg (or a leg whose policy records); each action is on the call's
timeline with who asked (``api:<token name>``). 404 ``call_not_live`` for a call not in
progress, 409 ``recording_unchanged`` when nothing changed.
"""

from __future__ import annotations

from aiohttp import web

from callcontrol.api.context import BACKEND, Handler, json_object, require
from callcontrol.errors import ApiError

ACTIONS = ("start", "stop", "mute", "unmute")


async def recording_control(request: web.Request) -> web.Response:
    """Act on the recording of a call in progress."""
    principal = require(request, "agent")
    call_id = request.match_info["call_id"][:128]
    body = await json_object(request, ("action",))
    action = body.get("action")
    if action not in ACTIONS:
        raise ApiError(400, "invalid_body", f"action must be one of {', '.join(ACTIONS)}",
                       {"fields": {"action": "required, one of " + ", ".join(ACTIONS)}})
    agent = None if principal.at_least("supervisor") else principal.agent_id or ""
    result = await request.app[BACKEND].recording_control(
        call_id, str(action), f"api:{principal.name}", agent)
    return web.json_response(result)


RECORDING_ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/api/calls/{call_id}/recording", recording_control),
]
