"""``callcontrol schedules open|close|clear|list``: operator overrides through the daemon's API.

The command talks to the running daemon (the override must reach live calls at once); it
authenticates with a supervisor or admin token from ``$CALLCONTROL_TOKEN`` or ``--token-file``
(default ``var/admin.token``, which ``make run`` creates).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from callcontrol.config import Config


def parse_until(text: str, timezone: str, now: datetime | None = None) -> datetime:
    """``HH:MM`` (the next such time in the site time zone) or an ISO-8601 time with offset."""
    zone = ZoneInfo(timezone)
    now = now or datetime.now(zone)
    if len(text) in (4, 5) and ":" in text:
        hour, minute = (int(part) for part in text.split(":"))
        local = now.astimezone(zone).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return local if local > now else local + timedelta(days=1)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``schedules`` sub-commands."""
    parser.add_argument("--token-file", help="API token file (default: var/admin.token)")
    sub = parser.add_subparsers(dest="schedules_command", required=True)
    for action in ("open", "close"):
        cmd = sub.add_parser(action, help=f"force a schedule {action} (until a time)")
        cmd.add_argument("name")
        cmd.add_argument("--until", help="HH:MM (site time) or ISO-8601; default: until cleared")
        cmd.add_argument("--reason", default="")
    sub.add_parser("clear", help="remove a schedule's override").add_argument("name")
    sub.add_parser("list", help="active overrides")


def _token(args: argparse.Namespace, config: Config) -> str:
    if os.environ.get("CALLCONTROL_TOKEN"):
        return os.environ["CALLCONTROL_TOKEN"]
    path = Path(args.token_file) if args.token_file else config.path(Path("var/admin.token"))
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise SystemExit(f"callcontrol: no API token ({path}: {exc.strerror}); set "
                         "CALLCONTROL_TOKEN or --token-file") from None


async def _call(config: Config, token: str, method: str, path: str,
                body: dict[str, Any] | None = None) -> tuple[int, Any]:
    url = f"http://{config.http.host}:{config.http.port}{path}"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.request(
        method, url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
    ) as resp:
        return resp.status, await resp.json()


def main(args: argparse.Namespace, config: Config) -> int:
    """Run one ``schedules`` sub-command; print the daemon's answer as JSON."""
    token = _token(args, config)
    command = args.schedules_command
    request: tuple[str, str, dict[str, Any] | None]
    if command == "list":
        request = ("GET", "/api/schedules", None)
    elif command == "clear":
        request = ("DELETE", f"/api/schedules/{args.name}/override", None)
    else:
        until = parse_until(args.until, config.site.timezone) if args.until else None
        body = {"state": "open" if command == "open" else "closed",
                "until": until.isoformat() if until else None, "reason": args.reason}
        request = ("POST", f"/api/schedules/{args.name}/override", body)
    try:
        status, answer = asyncio.run(_call(config, token, *request))
    except aiohttp.ClientError as exc:
        print(f"callcontrol: cannot reach the daemon: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2))
    return 0 if status < 400 else 1
