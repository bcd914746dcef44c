"""The ``callcontrol`` command: run the daemon, manage the store, flows, tokens; dial."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from callcontrol.config import Config, load_config
from callcontrol.errors import CallControlError

DEFAULT_CONFIG = Path(os.environ.get("CALLCONTROL_CONFIG", "config/callcontrol.yaml"))


def _config(args: argparse.Namespace, *, secrets: bool = False) -> Config:
    """The config; only the daemon needs its secrets (tools work without its environment)."""
    return load_config(Path(args.config), read_secrets=secrets)


def cmd_run(args: argparse.Namespace) -> int:
    from callcontrol.app import run_daemon

    return run_daemon(_config(args, secrets=True))


def cmd_config_check(args: argparse.Namespace) -> int:
    from callcontrol.flows.cli import shared_schedules

    config = _config(args, secrets=not args.without_secrets)
    shared_schedules(config)  # the flows side validates the shared schedules
    print(f"{args.config}: ok")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from callcontrol.store.migrations import upgrade

    config = _config(args)
    asyncio.run(upgrade(config.database_url()))
    print("database is up to date")
    return 0


def cmd_calls_list(args: argparse.Namespace) -> int:
    from callcontrol.store.db import create_engine
    from callcontrol.store.queries import format_calls_json, format_calls_table, recent_calls

    if args.limit < 1:
        print("callcontrol: --limit must be at least 1", file=sys.stderr)
        return 2
    config = _config(args)

    async def fetch() -> str:
        engine = create_engine(config.database_url())
        try:
            rows = await recent_calls(engine, args.limit)
        finally:
            await engine.dispose()
        return format_calls_json(rows) if args.json else format_calls_table(rows)

    print(asyncio.run(fetch()))
    return 0


def cmd_tokens_create(args: argparse.Namespace) -> int:
    from callcontrol.api.auth import TokenStore

    config = _config(args)
    store = TokenStore(config.path(config.http.tokens_file))
    if args.role == "agent" and args.agent not in {a.id for a in config.agents}:
        print(f"callcontrol: unknown agent {args.agent!r}", file=sys.stderr)
        return 2
    print(store.create(args.name or f"{args.role}-token", args.role, args.agent))
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    from callcontrol.api.auth import TokenStore
    from callcontrol.store.queries import format_table

    config = _config(args)
    infos = TokenStore(config.path(config.http.tokens_file)).tokens()
    if args.json:
        print(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
    else:
        print(format_table(("name", "role", "agent", "created (UTC)"), (
            (i.name, i.role, i.agent_id or "-", i.created_at or "-") for i in infos)))
    return 0


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    from callcontrol.api.auth import TokenStore

    config = _config(args)
    removed = TokenStore(config.path(config.http.tokens_file)).revoke(args.name)
    if not removed:
        print(f"callcontrol: no token named {args.name!r}", file=sys.stderr)
        return 2
    print(f"revoked {removed} token(s) named {args.name!r}")
    return 0


def cmd_recordings(args: argparse.Namespace) -> int:
    from callcontrol.recording import cli as recordings_cli

    return recordings_cli.main(args, _config(args))


def cmd_flows(args: argparse.Namespace) -> int:
    from callcontrol.flows import cli as flows_cli

    return flows_cli.main(args, _config(args))


def cmd_schedules(args: argparse.Namespace) -> int:
    from callcontrol import schedules_cli

    return schedules_cli.main(args, _config(args))


def cmd_dial(args: argparse.Namespace) -> int:
    from callcontrol.sipua.dial import run_dial

    return asyncio.run(run_dial(args, os.environ))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``callcontrol`` command."""
    parser = argparse.ArgumentParser(prog="callcontrol", description=__doc__)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="config file (default: %(default)s or $CALLCONTROL_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.set_defaults(func=cmd_run)

    config = sub.add_parser("config", help="configuration").add_subparsers(
        dest="config_command", required=True)
    check = config.add_parser("check", help="load the config as the daemon would (exit 2 if bad)")
    check.add_argument("--without-secrets", action="store_true",
                       help="do not read the secrets ({env: ...}, {file: ...})")
    check.set_defaults(func=cmd_config_check)

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)

    calls = sub.add_parser("calls", help="calls").add_subparsers(dest="calls_command",
                                                                 required=True)
    calls_list = calls.add_parser("list", help="recent calls, newest first")
    calls_list.add_argument("--limit", type=int, default=20)
    calls_list.add_argument("--json", action="store_true", help="print a JSON array")
    calls_list.set_defaults(func=cmd_calls_list)

    tokens = sub.add_parser("tokens", help="API tokens").add_subparsers(dest="tokens_command",
                                                                        required=True)
    create = tokens.add_parser("create", help="create a token (printed once)")
    create.add_argument("--role", required=True, choices=["admin", "supervisor", "agent"])
    create.add_argument("--agent", help="the agent an agent token acts for")
    create.add_argument("--name", help="a label for the token")
    create.set_defaults(func=cmd_tokens_create)
    tokens_list = tokens.add_parser("list", help="name, role, agent, created (never the token)")
    tokens_list.add_argument("--json", action="store_true", help="print a JSON array")
    tokens_list.set_defaults(func=cmd_tokens_list)
    revoke = tokens.add_parser("revoke", help="remove the tokens called NAME (at once, also "
                               "for a running daemon)")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(func=cmd_tokens_revoke)

    recordings = sub.add_parser("recordings", help="recordings: check files vs rows, purge")
    from callcontrol.recording import cli as recordings_cli

    recordings_cli.add_arguments(recordings)
    recordings.set_defaults(func=cmd_recordings)

    flows = sub.add_parser("flows", help="IVR flows: check, simulate, graph, schema, test")
    from callcontrol.flows import cli as flows_cli

    flows_cli.add_arguments(flows)
    flows.set_defaults(func=cmd_flows)

    schedules = sub.add_parser("schedules", help="force schedules open/closed (emergencies)")
    from callcontrol import schedules_cli

    schedules_cli.add_arguments(schedules)
    schedules.set_defaults(func=cmd_schedules)

    dial = sub.add_parser("dial", help="call an extension as the demo caller")
    from callcontrol.sipua.dial import add_dial_arguments

    add_dial_arguments(dial)
    dial.set_defaults(func=cmd_dial)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``callcontrol`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CallControlError as exc:
        print(f"callcontrol: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
