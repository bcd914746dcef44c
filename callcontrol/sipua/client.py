"""Asyncio side of the pjsua2 SIP peer: spawn the child process, send commands, await events.

    async with SipPeer(name="agent") as agent:
        await agent.register("agent1", secret, "127.0.0.1", 5060)
        await agent.set_auto_answer(True, play_wav=tone_1k, record_wav=str(tmp / "agent.wav"))
        event = await agent.wait_for("incoming", timeout=10)

Every event the child reports is kept in order. :meth:`SipPeer.wait_for` returns the earliest
matching event not yet returned by an earlier ``wait_for``, whether it arrived before or after
the call, so a test never misses an event that came early. If the child process dies, every
pending and later wait raises :class:`SipPeerCrashed` with its exit code and the tail of its
stderr, instead of hanging.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import callcontrol
from callcontrol.errors import CallControlError
from callcontrol.sipua.postmortem import native_backtrace

_STDERR_TAIL = 40
_START_TIMEOUT = 15.0
_COMMAND_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 5.0


class SipPeerError(CallControlError):
    """A SIP test peer failed: a command was refused, or the peer is gone."""

    error_id = "sip_peer"


class SipPeerCrashed(SipPeerError):
    """The peer's child process exited while it was still in use."""

    error_id = "sip_peer_crashed"

    def add_native_stacks(self, stacks: str) -> None:
        """Append the crashed child's C stacks to the message (they are read after the
        exception was raised to its waiters, which report it later)."""
        self.args = (f"{self.args[0]}\nnative stacks:\n{stacks}", *self.args[1:])


class SipPeerTimeout(SipPeerError, TimeoutError):
    """An awaited event or command reply did not come in time."""

    error_id = "sip_peer_timeout"


@dataclass(frozen=True)
class PeerEvent:
    """One event from the peer: ``kind`` (e.g. ``confirmed``) and its fields."""

    kind: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A field's value, or ``default``."""
        return self.fields.get(key, default)

    def matches(self, kind: str, match: Mapping[str, Any]) -> bool:
        """True when the event has this kind and every field in ``match`` is equal."""
        return self.kind == kind and all(self.fields.get(k) == v for k, v in match.items())


class SipPeer:
    """A pjsua2 SIP user agent in its own process (one account, UDP on 127.0.0.1).

    Use it as an async context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        *,
        name: str = "peer",
        clock_rate: int = 8000,
        log_level: int = 1,
        log_path: str | Path | None = None,
    ) -> None:
        self.name = name
        self.sip_port = 0
        self._clock_rate = clock_rate
        self._log_level = log_level
        self._log_path = Path(log_path) if log_path else None
        self._process: asyncio.subprocess.Process | None = None
        self._workdir: Path | None = None
        self._events: list[PeerEvent] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._seq = 0
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: SipPeerError | None = None
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> SipPeer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def pid(self) -> int:
        """Process id of the child (for tests that kill it on purpose)."""
        if self._process is None:
            raise SipPeerError(f"sip peer {self.name} is not started")
        return self._process.pid

    async def start(self) -> None:
        """Spawn the child and wait until its SIP transport is up.

        The child runs in a private work directory with core dumps allowed, so that a crash
        in pjsua2's C code is reported with its native stacks (:mod:`.postmortem`).
        """
        self._workdir = Path(tempfile.mkdtemp(prefix=f"sipua-{self.name}-"))
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callcontrol.sipua.peer",
            "--clock-rate",
            str(self._clock_rate),
            "--log-level",
            str(self._log_level),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_child_environment(),
            cwd=self._workdir,
        )
        self._tasks = [
            asyncio.create_task(self._read_events(), name=f"sipua-{self.name}-events"),
            asyncio.create_task(self._read_stderr(), name=f"sipua-{self.name}-stderr"),
        ]
        try:
            ready = await self.wait_for("ready", _START_TIMEOUT)
        except BaseException:
            await self.close()
            raise
        self.sip_port = int(ready["sip_port"])

    async def close(self) -> None:
        """Hang up, unregister and stop the child (killing it if it does not exit in time)."""
        if self._process is None:
            return
        self._closing = True
        process = self._process
        if process.returncode is None and process.stdin is not None:
            with contextlib.suppress(SipPeerError, ConnectionError):
                await self._command("quit", seconds=_CLOSE_TIMEOUT)
            with contextlib.suppress(ConnectionError):
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), _CLOSE_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail(SipPeerError(f"sip peer {self.name} is closed"))
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    # -- commands ---------------------------------------------------------------------------

    async def register(
        self,
        user: str,
        password: str,
        host: str,
        port: int,
        timeout: float = 10.0,
    ) -> PeerEvent:
        """Create the account and register it with digest auth; returns the ``registered``
        event or raises :class:`SipPeerError` when the registrar refuses."""
        await self._command("account", user=user, password=password, host=host, port=port)
        event = await self.wait_for_any(("registered", "registration_failed"), timeout)
        if event.kind != "registered":
            raise SipPeerError(
                f"sip peer {self.name}: registration of {user} failed: "
                f"{event['code']} {event['reason']}"
            )
        return event

    async def use_account(self, user: str, password: str, host: str, port: int) -> None:
        """Create the account without registering: calls answer digest challenges with it."""
        await self._command(
            "account", user=user, password=password, host=host, port=port, register=False
        )

    async def set_auto_answer(
        self,
        enabled: bool,
        play_wav: str | Path | None = None,
        record_wav: str | Path | None = None,
    ) -> None:
        """Answer incoming calls with 200 (or leave them ringing with 180 when disabled).

        ``record_wav`` may contain ``{call_id}`` to give each answered call its own file.
        """
        await self._command(
            "auto_answer", enabled=enabled, play_wav=_opt(play_wav), record_wav=_opt(record_wav)
        )

    async def call(
        self,
        uri: str,
        play_wav: str | Path | None = None,
        record_wav: str | Path | None = None,
    ) -> str:
        """Place a call; ``play_wav`` is looped into it, ``record_wav`` records all it hears
        until hangup. Returns the peer's call id."""
        result = await self._command(
            "call", uri=uri, play_wav=_opt(play_wav), record_wav=_opt(record_wav)
        )
        return str(result["call_id"])

    async def answer(
        self,
        call_id: str,
        play_wav: str | Path | None = None,
        record_wav: str | Path | None = None,
        code: int = 200,
    ) -> None:
        """Answer a ringing incoming call (when auto-answer is off)."""
        await self._command(
            "answer",
            call_id=call_id,
            play_wav=_opt(play_wav),
            record_wav=_opt(record_wav),
            code=code,
        )

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        """Send digits in the media stream as RFC 4733 (RFC 2833) events, one every 0.4 s as
        from a keypad (queued in the peer: this returns before they are all sent)."""
        await self._command("dtmf", call_id=call_id, digits=digits)

    async def hangup(self, call_id: str, code: int = 0) -> None:
        """Hang up (BYE, CANCEL, or reject with ``code`` when still ringing)."""
        await self._command("hangup", call_id=call_id, code=code)

    # -- events -----------------------------------------------------------------------------

    def events(self, kind: str | None = None) -> list[PeerEvent]:
        """Every event seen so far (of one kind if given), oldest first."""
        return [e for e in self._events if kind is None or e.kind == kind]

    async def wait_for(
        self,
        kind: str,
        timeout: float = 10.0,
        **match: Any,
    ) -> PeerEvent:
        """The earliest not yet returned event of ``kind`` whose fields equal ``match``."""
        return await self.wait_for_any((kind,), timeout, **match)

    async def wait_for_any(
        self,
        kinds: tuple[str, ...],
        timeout: float = 10.0,
        **match: Any,
    ) -> PeerEvent:
        """Like :meth:`wait_for`, for the first event of any of ``kinds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            for index, event in enumerate(self._events):
                if index not in self._taken and any(event.matches(k, match) for k in kinds):
                    self._taken.add(index)
                    return event
            if self._failure is not None:
                raise self._failure
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = ", ".join(e.kind for e in self._events[-10:]) or "none"
                errors = "; ".join(str(e.get("message")) for e in self.events("error"))
                raise SipPeerTimeout(
                    f"sip peer {self.name}: no {'/'.join(kinds)} event matching {match} "
                    f"within {timeout} s (last events: {seen})"
                    + (f"; callback errors: {errors}" if errors else "")
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    # -- plumbing ---------------------------------------------------------------------------

    async def _command(
        self, cmd: str, seconds: float = _COMMAND_TIMEOUT, **args: Any
    ) -> dict[str, Any]:
        if self._failure is not None:
            raise self._failure
        if self._process is None or self._process.stdin is None:
            raise SipPeerError(f"sip peer {self.name} is not started")
        self._seq += 1
        seq = self._seq
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[seq] = reply
        try:
            self._process.stdin.write(
                (json.dumps({"seq": seq, "cmd": cmd, **args}) + "\n").encode()
            )
            await self._process.stdin.drain()
            message = await asyncio.wait_for(reply, seconds)
        except TimeoutError:
            raise SipPeerTimeout(
                f"sip peer {self.name}: no reply to {cmd} in {seconds} s"
            ) from None
        except ConnectionError as exc:  # the child is gone; its reader reports why
            await asyncio.wait_for(asyncio.shield(self._tasks[0]), _CLOSE_TIMEOUT)
            raise self._failure or SipPeerCrashed(f"sip peer {self.name}: {exc}") from exc
        finally:
            self._replies.pop(seq, None)
        if not message.get("ok"):
            raise SipPeerError(f"sip peer {self.name}: {cmd} failed: {message.get('error')}")
        result: dict[str, Any] = message.get("result", {})
        return result

    async def _read_events(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                self._stderr_tail.append(f"(bad protocol line) {raw!r}")
                continue
            kind = message.pop("event", "unknown")
            if kind == "reply":
                future = self._replies.get(message.get("seq", -1))
                if future is not None and not future.done():
                    future.set_result(message)
                continue
            self._events.append(PeerEvent(kind, message))
            self._notify()
        code = await self._process.wait()
        if not self._closing:
            tail = "\n".join(self._stderr_tail) or "(no stderr)"
            report = (
                f"sip peer {self.name} (pid {self._process.pid}) exited with code {code}; "
                f"stderr tail:\n{tail}"
            )
            crash = SipPeerCrashed(report)
            self._fail(crash)  # waits fail at once; the stacks join the report when read
            if code < 0 and self._workdir is not None:
                crash.add_native_stacks(await native_backtrace(self._workdir, self._process.pid))

    async def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        log = self._log_path.open("a", encoding="utf-8") if self._log_path else None
        try:
            async for raw in self._process.stderr:
                line = raw.decode(errors="replace").rstrip()
                self._stderr_tail.append(line)
                if log is not None:
                    log.write(line + "\n")
        finally:
            if log is not None:
                log.close()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _fail(self, error: SipPeerError) -> None:
        if self._failure is None:
            self._failure = error
        for future in self._replies.values():
            if not future.done():
                future.set_exception(self._failure)
        self._notify()


def _child_environment() -> dict[str, str]:
    """This environment, with the folder holding the ``callcontrol`` package importable."""
    env = dict(os.environ)
    root = str(Path(callcontrol.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _opt(path: str | Path | None) -> str | None:
    """An absolute path for the child, which runs in its own work directory."""
    return str(Path(path).absolute()) if path is not None else None
