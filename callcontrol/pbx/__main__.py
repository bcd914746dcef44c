"""``python -m callcontrol.pbx start|stop|status|render``: the Asterisk of a callcontrol config.

start   --config FILE --state-dir DIR   render the config and start Asterisk (restarts it
                                        with fresh config when it already runs)
stop    --config FILE --state-dir DIR   stop it and unmount what it mounted
status  --config FILE --state-dir DIR   print "running PID" (exit 0) or "stopped" (exit 3)
render  --config FILE --out DIR [--base PBXDIR]
                                        write the rendered files (no Asterisk needed), for
                                        asterisk-docker/: PBXDIR is the instance folder as
                                        Asterisk will see it (default /srv/callcontrol/NAME)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path, PurePosixPath

from callcontrol.config import load_config
from callcontrol.errors import CallControlError
from callcontrol.pbx.render import MOH_TONE, render_config, write_config, write_moh_tone
from callcontrol.pbx.service import instance_for_config, settings_from_config
from callcontrol.pbx.settings import PbxDirs


async def _command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.command == "render":
        settings = settings_from_config(config)
        dirs = PbxDirs(PurePosixPath(args.base or f"/srv/callcontrol/{settings.name}"))
        for folder in dirs.writable():
            (args.out / folder.relative_to(dirs.base)).mkdir(parents=True, exist_ok=True)
        write_config(render_config(settings, dirs, str(dirs.moh)), args.out / "etc")
        write_moh_tone(args.out / "moh" / MOH_TONE)
        print(f"rendered {args.out}; run: asterisk -f -C {dirs.asterisk_conf}")
        return 0
    instance = await instance_for_config(config, args.state_dir)
    if args.command == "start":
        await instance.start()
        print(
            f"asterisk {instance.settings.name} running, pid {instance.pid}, "
            f"SIP {instance.host}:{instance.sip_port}, ARI {instance.ari_url}"
        )
    elif args.command == "stop":
        await instance.stop()
        print(f"asterisk {instance.settings.name} stopped")
    else:
        pid = instance.pid
        print(f"running {pid}" if pid is not None else "stopped")
        return 0 if pid is not None else 3
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; errors print one line and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m callcontrol.pbx")
    parser.add_argument("command", choices=["start", "stop", "status", "render"])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, default=Path("var"))
    parser.add_argument("--out", type=Path, default=Path("asterisk-rendered"))
    parser.add_argument("--base", default=None)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_command(args))
    except CallControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
