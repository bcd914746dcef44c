"""``callcontrol flows ...``: check, simulate, graph, schema and test the IVR flows.

    callcontrol --config FILE flows check [PATH...] [--sounds DIR]
    callcontrol --config FILE flows simulate FLOW --digits ... [--var k=v] [--http-fixture FILE]
    callcontrol --config FILE flows graph FLOW [--format mermaid|dot]
    callcontrol --config FILE flows schema
    callcontrol --config FILE flows test [PATH...]

Paths default to the config's ``flows.dir`` (``flows test``: its ``tests/`` folder). ``check``
knows the configured queues, the config's shared schedules and the stock sounds of the Asterisk
in use: under the root named by ``asterisk.chroot`` when set (fast), else the one
``scripts/provision-asterisk.sh`` reports (the chroot it built, or ``/`` for a native
Asterisk); ``--sounds`` names the sounds folder outright. Findings print one per line as
``PATH:LINE:COL: error|warning: message``; the exit status is 1 only when one is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from callcontrol.config import NO_RECORDING, Config
from callcontrol.errors import ConfigError, FlowError

SOUNDS_SUBDIR = Path("usr/share/asterisk/sounds")
"""Where Asterisk keeps its sounds, under its root."""

FORMATS = ("mermaid", "dot")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``flows`` sub-commands to ``parser`` (the ``flows`` parser of the main CLI)."""
    sub = parser.add_subparsers(dest="flows_command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="check flow files (exit 1 on errors)")
    check.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                       help="flow files or folders (default: the config's flows.dir)")
    check.add_argument("--sounds", type=Path, metavar="DIR",
                       help="Asterisk's sounds folder (default: found from the Asterisk in use)")

    simulate = sub.add_parser("simulate", help="run a flow with no Asterisk; print the path")
    simulate.add_argument("flow", metavar="FLOW", help="flow name, or path of a flow file")
    simulate.add_argument("--digits", default="", metavar="SCRIPT",
                          help="what the caller does: keys 0-9*#, P (prompt ends), "
                               "T (silence until the timeout), H (hang up), "
                               "R/E (recording with a message / empty)")
    simulate.add_argument("--var", type=parse_var, action="append", default=[],
                          metavar="NAME=VALUE", help="set a variable before the start")
    simulate.add_argument("--http-fixture", type=Path, metavar="FILE",
                          help="YAML/JSON list of canned http answers")
    simulate.add_argument("--at", type=_parse_clock, metavar="ISO",
                          help="the clock, ISO 8601 with a UTC offset")
    simulate.add_argument("--queue-exit", action="append", default=[], metavar="EXIT",
                          help="how the next queue step ends (default: after)")
    simulate.add_argument("--dial-result", action="append", default=[], metavar="RESULT",
                          help="how the next dial step ends (default: next)")
    simulate.add_argument("--json", action="store_true", help="print the result as JSON")

    graph = sub.add_parser("graph", help="draw a flow (Mermaid or Graphviz DOT)")
    graph.add_argument("flow", metavar="FLOW", help="flow name, or path of a flow file")
    graph.add_argument("--format", choices=FORMATS, default="mermaid")

    sub.add_parser("schema", help="print the JSON Schema of flow files")

    test = sub.add_parser("test", help="run flow test cases")
    test.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                      help="case files or folders (default: the tests/ folder of flows.dir)")


def main(args: argparse.Namespace, config: Config, out: TextIO | None = None) -> int:
    """Run the ``flows`` sub-command in ``args``; return the exit status."""
    out = out or sys.stdout
    command: str = args.flows_command
    if command == "check":
        return _check(args, config, out)
    if command == "simulate":
        return _simulate(args, config, out)
    if command == "graph":
        return _graph(args, config, out)
    if command == "schema":
        from callcontrol.flows.schema import flow_json_schema_text

        out.write(flow_json_schema_text())
        return 0
    if command == "test":
        from callcontrol.flows.flowtest import SimulationContext, flowtest_main

        paths = list(args.paths) or [flows_dir(config) / "tests"]
        context = SimulationContext(shared_schedules(config), ZoneInfo(config.site.timezone))
        return flowtest_main(paths, out=out, context=context)
    raise ValueError(f"unknown flows command {command!r}")


# --- what the flows are checked against ----------------------------------------------------


def flows_dir(config: Config) -> Path:
    """The configured flows folder."""
    return config.path(config.flows.dir)


def shared_schedules(config: Config) -> dict[str, Any]:
    """The config's shared schedules as flow :class:`~callcontrol.flows.model.Schedule`
    models; raise :class:`ConfigError` naming every one that does not validate."""
    from callcontrol.flows.model import Schedule

    schedules: dict[str, Any] = {}
    problems = []
    for name, raw in config.schedules.items():
        try:
            schedules[name] = Schedule.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in ("schedules", name, *err["loc"]))
                problems.append(f"config {where}: {err['msg'].removeprefix('Value error, ')}")
    if problems:
        raise ConfigError("\n".join(problems))
    return schedules


async def asterisk_root(config: Config) -> Path:
    """The root folder of the Asterisk in use: ``asterisk.chroot`` when configured, else
    what the provisioning script reports (its chroot, or ``/`` for a native Asterisk)."""
    if config.asterisk.chroot is not None:
        return config.path(config.asterisk.chroot)
    from callcontrol.pbx.provision import provision

    launcher = await provision()
    return launcher.root or Path("/")


def stock_sounds(config: Config, sounds_dir: Path | None = None) -> dict[str, set[str]]:
    """Asterisk's stock sounds by language, from ``sounds_dir`` or the Asterisk in use."""
    from callcontrol.flows.check import load_stock_sounds

    chroot: Path | None = None
    if sounds_dir is None:
        root = asyncio.run(asterisk_root(config))
        chroot = None if root == Path("/") else root
        sounds_dir = root / SOUNDS_SUBDIR
    if not sounds_dir.is_dir():
        raise ConfigError(f"no Asterisk sounds folder at {sounds_dir} (use --sounds DIR)")
    return load_stock_sounds(sounds_dir, chroot)


def _check(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    from callcontrol.flows.check import CheckContext, check_main

    context = CheckContext(
        known_queues=set(config.queues),
        recording_policies={NO_RECORDING, *config.recording.policies},
        shared_schedules=shared_schedules(config),
        stock_sounds=stock_sounds(config, args.sounds),
    )
    return check_main(list(args.paths) or [flows_dir(config)], context, out=out)


# --- one flow: graph and simulate ----------------------------------------------------------


def _locate(flow: str, config: Config) -> tuple[Path, str]:
    """(folder, flow name) for a flow given by name or by file path."""
    if flow.endswith((".yaml", ".yml")):
        path = Path(flow)
        return path.parent, path.stem
    return flows_dir(config), flow


def _graph(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    from callcontrol.flows.graph import to_dot, to_mermaid
    from callcontrol.flows.loader import load_flow

    given = Path(args.flow)
    path = given if given.suffix in (".yaml", ".yml") else flows_dir(config) / f"{args.flow}.yaml"
    try:
        loaded = load_flow(path)
    except FlowError as exc:
        for finding in exc.findings:
            print(finding, file=sys.stderr)
        return 1
    out.write(to_dot(loaded.flow) if args.format == "dot" else to_mermaid(loaded.flow))
    return 0


def _simulate(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    from callcontrol.flows.engine import FlowServices
    from callcontrol.flows.expressions import Sandbox
    from callcontrol.flows.prompts import PromptResolver
    from callcontrol.flows.registry import load_folder
    from callcontrol.flows.simulate import FixtureHttp, load_fixture_file, run_simulation

    folder, name = _locate(args.flow, config)
    flows, refused = load_folder(folder)
    if name not in flows:
        for findings in refused.values():
            for finding in findings:
                print(finding, file=sys.stderr)
        print(f"flow {name!r} is not loadable from {folder}", file=sys.stderr)
        return 1
    # Read now (not at config load): the other commands need no secret.
    secrets = {
        key: ref.resolve(config.base_dir).get_secret_value()
        for key, ref in config.flows.secrets.items()
    }
    services = FlowServices(
        sandbox=Sandbox(secrets),
        prompts=PromptResolver(folder / "prompts"),
        http=load_fixture_file(args.http_fixture) if args.http_fixture else FixtureHttp(),
        schedules=shared_schedules(config),
        site_timezone=ZoneInfo(config.site.timezone),
    )
    result = asyncio.run(
        run_simulation(
            name,
            flows,
            digits=args.digits,
            variables=dict(args.var),
            now=args.at,
            queue_exits=args.queue_exit,
            dial_results=args.dial_result,
            services=services,
        )
    )
    result.write_report(out, args.json)
    return 0


def parse_var(text: str) -> tuple[str, str]:
    """The ``--var NAME=VALUE`` argument type: ``(NAME, VALUE)``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--var takes NAME=VALUE, got {text!r}")
    return name, value


def _parse_clock(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--at takes an ISO 8601 time, got {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--at needs a UTC offset (e.g. +01:00): {text!r}")
    return moment
