"""``callcontrol dial EXTEN``: call the hotline as the demo caller and report what was heard.

The SIP host, port and caller credentials come from the flags, else the environment, else
``var/local.env`` (``KEY=VALUE`` lines written by ``make run``): ``SIP_HOST``, ``SIP_PORT``,
``DEMO_CALLER_USER``, ``DEMO_CALLER_PASSWORD``. The call answers Asterisk's digest challenge
(no registration unless ``--register``). After the answer, each ``--digits`` group is sent as
RFC 4733 events after ``--digit-pause`` seconds (before the first group, then between groups).
The call is recorded to ``--record`` (or a temporary file) until it ends, the far end hangs up
or ``--hangup-after`` seconds pass. Exit status: 0 answered, 1 not answered, 2 bad settings.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from callcontrol import audio
from callcontrol.sipua.client import PeerEvent, SipPeer, SipPeerError, SipPeerTimeout

DEFAULT_ENV_FILE = Path("var/local.env")
_HANGUP_GRACE = 5.0


@dataclass(frozen=True)
class DialTarget:
    """Where to call and as whom."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class DialOutcome:
    """What happened to the call."""

    answered: bool
    code: int
    reason: str
    connect_seconds: float
    hung_up_by_us: bool
    recording: Path | None


class DialSettingsError(ValueError):
    """A setting needed to place the call is missing or invalid."""


def add_dial_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``dial`` command's arguments to ``parser``."""
    parser.add_argument("exten", help="extension to call, e.g. 100")
    parser.add_argument(
        "--digits",
        action="append",
        default=[],
        metavar="DIGITS",
        help="DTMF group to send after the answer (repeatable, e.g. --digits 1 --digits 123#)",
    )
    parser.add_argument("--play", metavar="WAV", help="WAV file looped into the call")
    parser.add_argument("--record", metavar="WAV", help="record what the call hears to WAV")
    parser.add_argument(
        "--wait", type=float, default=30.0, metavar="SECONDS", help="wait this long for an answer"
    )
    parser.add_argument(
        "--hangup-after",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="hang up this long after the answer, unless the far end did (default %(default)s)",
    )
    parser.add_argument(
        "--digit-pause",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="pause before each digits group (default %(default)s)",
    )
    parser.add_argument("--host", help="SIP host (else SIP_HOST)")
    parser.add_argument("--port", type=int, help="SIP UDP port (else SIP_PORT)")
    parser.add_argument("--user", help="caller user name (else DEMO_CALLER_USER)")
    parser.add_argument(
        "--password-file", help="file holding the caller password (else DEMO_CALLER_PASSWORD)"
    )
    parser.add_argument(
        "--env-file",
        default=str(DEFAULT_ENV_FILE),
        help="KEY=VALUE file with the demo settings (default %(default)s)",
    )
    parser.add_argument(
        "--register", action="store_true", help="register before calling (default: digest only)"
    )


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines (``#`` comments, optional quotes); missing file -> empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def resolve_target(args: argparse.Namespace, env: Mapping[str, str]) -> DialTarget:
    """Flags first, then ``env``, then the env file; raises :class:`DialSettingsError`."""
    settings = {**read_env_file(Path(args.env_file)), **env}
    password = (
        Path(args.password_file).read_text(encoding="utf-8").strip()
        if args.password_file
        else settings.get("DEMO_CALLER_PASSWORD")
    )
    host = args.host or settings.get("SIP_HOST") or "127.0.0.1"
    port_text = args.port if args.port is not None else settings.get("SIP_PORT", "5060")
    user = args.user or settings.get("DEMO_CALLER_USER")
    missing = [name for name, value in (("caller user", user), ("password", password)) if not value]
    if missing:
        raise DialSettingsError(
            f"no {' and no '.join(missing)}: run `make run` (writes {args.env_file}) "
            "or set DEMO_CALLER_USER / DEMO_CALLER_PASSWORD"
        )
    try:
        port = int(port_text)
    except ValueError:
        raise DialSettingsError(f"SIP port {port_text!r} is not a number") from None
    assert user is not None and password is not None
    return DialTarget(host=host, port=port, user=user, password=password)


async def run_dial(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Place the call described by ``args``; print a summary; 0 when it was answered."""
    try:
        target = resolve_target(args, env)
    except (DialSettingsError, OSError) as exc:
        print(f"callcontrol dial: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="callcontrol-dial-") as scratch:
        record = Path(args.record) if args.record else Path(scratch) / "heard.wav"
        try:
            outcome = await _place_call(args, target, record)
        except SipPeerError as exc:
            print(f"callcontrol dial: {exc}", file=sys.stderr)
            return 1
        _print_summary(outcome, keep_recording=bool(args.record))
    return 0 if outcome.answered else 1


async def _place_call(args: argparse.Namespace, target: DialTarget, record: Path) -> DialOutcome:
    uri = f"sip:{args.exten}@{target.host}:{target.port}"
    async with SipPeer(name="dial") as peer:
        if args.register:
            await peer.register(target.user, target.password, target.host, target.port)
        else:
            await peer.use_account(target.user, target.password, target.host, target.port)
        print(f"calling {uri} as {target.user}")
        started = time.monotonic()
        call_id = await peer.call(uri, play_wav=args.play, record_wav=record)
        answer = await _first_of(peer, ("confirmed", "disconnected"), args.wait, call_id)
        if answer is None:
            return _outcome(await _hang_up(peer, call_id), answered=False, by_us=True)
        if answer.kind == "disconnected":
            return _outcome(answer, answered=False, by_us=False)
        print(f"answered after {time.monotonic() - started:.1f} s")
        answered_at = time.monotonic()
        for digits in args.digits:
            early_end = await _first_of(peer, ("disconnected",), args.digit_pause, call_id)
            if early_end is not None:
                return _outcome(early_end, answered=True, by_us=False)
            await peer.send_dtmf(call_id, digits)
            print(f"sent digits {digits}")
        remaining = max(0.0, answered_at + args.hangup_after - time.monotonic())
        far_end = await _first_of(peer, ("disconnected",), remaining, call_id)
        if far_end is not None:
            return _outcome(far_end, answered=True, by_us=False)
        return _outcome(await _hang_up(peer, call_id), answered=True, by_us=True)


async def _first_of(
    peer: SipPeer, kinds: tuple[str, ...], seconds: float, call_id: str
) -> PeerEvent | None:
    """The first of ``kinds`` for the call within ``seconds``, or None."""
    try:
        return await peer.wait_for_any(kinds, seconds, call_id=call_id)
    except SipPeerTimeout:
        return None


async def _hang_up(peer: SipPeer, call_id: str) -> PeerEvent:
    await peer.hangup(call_id)
    return await peer.wait_for("disconnected", _HANGUP_GRACE, call_id=call_id)


def _outcome(event: PeerEvent, *, answered: bool, by_us: bool) -> DialOutcome:
    recording = event.get("recording")
    return DialOutcome(
        answered=answered,
        code=int(event.get("code", 0)),
        reason=str(event.get("reason", "")),
        connect_seconds=float(event.get("connect_seconds", 0.0)),
        hung_up_by_us=by_us,
        recording=Path(recording) if recording else None,
    )


def _print_summary(outcome: DialOutcome, *, keep_recording: bool) -> None:
    if not outcome.answered:
        print(f"not answered: {outcome.code} {outcome.reason}")
        return
    who = "we hung up" if outcome.hung_up_by_us else "the far end hung up"
    print(f"call lasted {outcome.connect_seconds:.1f} s; {who}")
    if outcome.recording is None or not outcome.recording.exists():
        print("nothing was recorded (no media)")
        return
    level = audio.rms(outcome.recording)
    heard = "sound" if level > audio.SILENCE_FLOOR else "silence"
    where = f" in {outcome.recording}" if keep_recording else ""
    print(f"heard {heard}: RMS {level:.3f} over {audio.duration(outcome.recording):.1f} s{where}")
