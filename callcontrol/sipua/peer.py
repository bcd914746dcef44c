"""SIP peer child process: one pjsua2 account driven by JSON lines.

Run as ``python -m callcontrol.sipua.peer [--clock-rate 8000] [--log-level 1]``; the asyncio
side (:mod:`callcontrol.sipua.client`) spawns it. pjsua2 owns this process's main thread
(``mainThreadOnly``, no worker threads, null audio device); a reader thread only moves stdin
lines into a queue, and the main loop alternates ``libHandleEvents`` with running commands.

Protocol (one JSON object per line):

* stdin, commands: ``{"seq": N, "cmd": NAME, ...arguments}``; every command gets exactly one
  reply on stdout: ``{"event": "reply", "seq": N, "ok": true, "result": {...}}`` or
  ``{"event": "reply", "seq": N, "ok": false, "error": "..."}``. Commands:
  ``account`` (user, password, host, port, register), ``auto_answer`` (enabled, play_wav,
  record_wav), ``call`` (uri, play_wav, record_wav) -> ``{"call_id"}``, ``answer`` (call_id,
  play_wav, record_wav, code), ``dtmf`` (call_id, digits: queued, then sent as RFC 4733
  events one digit every 0.4 s, as from a keypad), ``hangup`` (call_id, code), ``quit``.
  ``record_wav`` may contain ``{call_id}``, replaced by the peer's call id.
* stdout, events: ``ready`` (sip_port), ``registered`` / ``unregistered`` /
  ``registration_failed`` (code, reason, expires), ``incoming`` (call_id, remote_uri),
  ``calling`` / ``early`` / ``connecting`` / ``confirmed`` (call_id, code, reason, sip_call_id:
  the SIP Call-ID header of the dialog; also on ``disconnected``), ``media``
  (call_id, index: audio flows, player and recorder attached),
  ``ended`` (call_id, code, reason, sip_call_id, connect_seconds: the dialog ended, sent at
  once, in order with the other calls' events), ``disconnected`` (the same fields and
  ``recording``), ``dtmf`` (call_id, digit), ``error`` (message) for a failure inside a pjsua2
  callback.

Recordings cover the whole call from the first active media to the hangup; the WAV file is
closed (its header written) before ``disconnected`` is sent. That can take a few polls, so a
call arriving meanwhile reports ``incoming`` before the earlier call's ``disconnected``: to
know which calls were up at once, pair ``incoming`` with ``ended``. The process exits when stdin
closes, so a dead parent never leaves it behind. pjsua2's own log goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import pjsua2 as pj

from callcontrol.sipua.postmortem import allow_core_dumps

_CALL_STATES = {
    pj.PJSIP_INV_STATE_CALLING: "calling",
    pj.PJSIP_INV_STATE_EARLY: "early",
    pj.PJSIP_INV_STATE_CONNECTING: "connecting",
    pj.PJSIP_INV_STATE_CONFIRMED: "confirmed",
    pj.PJSIP_INV_STATE_DISCONNECTED: "disconnected",
}
_CODECS = ("PCMU/8000", "PCMA/8000")
_POLL_MS = 20
# One RFC 4733 digit every 0.4 s: pjsua sends a digit for 200 ms plus three end packets
# (60 ms), so a pause of ~140 ms follows, as a person's keypad gives. pjsua's own queue sends
# a string's digits back to back, about 20 ms apart, and Asterisk's DTMF gap handling then
# (rarely) delivered a digit twice: "2468" typed, "2446" heard by the application.
_DIGIT_SPACING = 0.4
_SHUTDOWN_SECONDS = 3.0
_FLUSH_SECONDS = 2.0


class PeerRuntimeError(Exception):
    """A command that the peer cannot carry out (bad arguments, unknown call)."""


class _Emitter:
    """Writes JSON events to the protocol stream (a private copy of the original stdout)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: str, **fields: Any) -> None:
        self._stream.write(json.dumps({"event": event, **fields}) + "\n")
        self._stream.flush()


def _guarded(method: Callable[..., None]) -> Callable[..., None]:
    """Report exceptions raised in a pjsua2 callback instead of letting SWIG swallow them."""

    def wrapper(self: Any, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception as exc:
            self.peer.emit("error", message=f"{method.__name__}: {exc!r}")

    wrapper.__name__ = method.__name__
    return wrapper


class _Call(pj.Call):  # type: ignore[misc]
    """One call with its optional WAV player and recorder."""

    def __init__(
        self,
        peer: Peer,
        account: pj.Account,
        name: str,
        pj_call_id: int = pj.PJSUA_INVALID_ID,
    ) -> None:
        super().__init__(account, pj_call_id)
        self.peer = peer
        self.name = name
        self.play_wav: str | None = None
        self.record_wav: str | None = None
        self._player: pj.AudioMediaPlayer | None = None
        self._recorder: pj.AudioMediaRecorder | None = None
        self.pending_digits = ""
        self.next_digit_at = 0.0

    def set_media_files(self, play_wav: str | None, record_wav: str | None) -> None:
        """Choose the WAV looped into the call and the WAV recording what the call hears."""
        self.play_wav = play_wav
        self.record_wav = record_wav.replace("{call_id}", self.name) if record_wav else None

    @_guarded
    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        info = self.getInfo()
        kind = _CALL_STATES.get(info.state)
        if kind is None:
            return
        fields: dict[str, Any] = {
            "call_id": self.name,
            "code": info.lastStatusCode,
            "reason": info.lastReason,
            "sip_call_id": info.callIdString,
        }
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            fields["connect_seconds"] = round(
                info.connectDuration.sec + info.connectDuration.msec / 1000, 3
            )
            self.peer.emit("ended", **fields)
            fields["recording"] = self._close_media()
            self.peer.forget(self, fields)
            return
        self.peer.emit(kind, **fields)

    @_guarded
    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            audio = self.getAudioMedia(index)
            if self.play_wav:
                if self._player is None:
                    self._player = pj.AudioMediaPlayer()
                    self._player.createPlayer(self.play_wav)  # loops by default
                self._player.startTransmit(audio)
            if self.record_wav:
                if self._recorder is None:
                    self._recorder = pj.AudioMediaRecorder()
                    self._recorder.createRecorder(self.record_wav)
                audio.startTransmit(self._recorder)
            self.peer.emit("media", call_id=self.name, index=index)

    @_guarded
    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        self.peer.emit("dtmf", call_id=self.name, digit=prm.digit)

    def _close_media(self) -> str | None:
        """Stop the player and close the recorder (writes the WAV header); return its path."""
        self._player = None
        if self._recorder is None:
            return None
        self._recorder = None  # the destructor closes the file
        return self.record_wav


class _Account(pj.Account):  # type: ignore[misc]
    """The peer's single account: reports registration and takes incoming calls."""

    def __init__(self, peer: Peer) -> None:
        super().__init__()
        self.peer = peer

    @_guarded
    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        if 200 <= prm.code < 300:
            kind = "registered" if prm.expiration > 0 else "unregistered"
        else:
            kind = "registration_failed"
        self.peer.registered = kind == "registered"
        self.peer.emit(kind, code=prm.code, reason=prm.reason, expires=prm.expiration)

    @_guarded
    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        call = self.peer.adopt_incoming(self, prm.callId)
        self.peer.emit("incoming", call_id=call.name, remote_uri=call.getInfo().remoteUri)
        answer = pj.CallOpParam()
        answer.statusCode = 200 if self.peer.auto_answer else 180
        call.answer(answer)


class Peer:
    """The pjsua2 endpoint, its account and calls; runs commands from the parent."""

    def __init__(self, emit: _Emitter, clock_rate: int, log_level: int) -> None:
        self.emit = emit
        self.auto_answer = False
        self.registered = False
        self._auto_play: str | None = None
        self._auto_record: str | None = None
        self._calls: dict[str, _Call] = {}
        self._finished: list[_Call] = []
        self._disconnecting: list[tuple[float, dict[str, Any]]] = []
        self._next_call = 1
        self._account: _Account | None = None
        self._endpoint = pj.Endpoint()
        self._endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.maxCalls = 32
        config.uaConfig.userAgent = "callcontrol-sipua"
        config.medConfig.threadCnt = 0
        config.medConfig.clockRate = clock_rate
        config.medConfig.sndClockRate = clock_rate
        config.medConfig.noVad = True
        config.medConfig.ecTailLen = 0
        config.logConfig.level = log_level
        config.logConfig.consoleLevel = log_level
        self._endpoint.libInit(config)
        transport = pj.TransportConfig()
        transport.port = 0
        transport.boundAddress = "127.0.0.1"
        transport.publicAddress = "127.0.0.1"
        transport_id = self._endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.sip_port = int(self._endpoint.transportGetInfo(transport_id).localName.rsplit(":")[1])
        self._endpoint.libStart()
        self._endpoint.audDevManager().setNullDev()
        for codec in self._endpoint.codecEnum2():
            keep = codec.codecId.startswith(_CODECS)
            self._endpoint.codecSetPriority(codec.codecId, 128 if keep else 0)

    # -- called from pjsua2 callbacks -------------------------------------------------------

    def adopt_incoming(self, account: _Account, pj_call_id: int) -> _Call:
        """Wrap an incoming call, with the auto-answer media files when auto-answer is on."""
        call = _Call(self, account, self._new_call_name("in"), pj_call_id)
        if self.auto_answer:
            call.set_media_files(self._auto_play, self._auto_record)
        self._calls[call.name] = call
        return call

    def forget(self, call: _Call, fields: dict[str, Any]) -> None:
        """Drop a disconnected call (the object lives until the current callback returned) and
        send ``disconnected`` once its recording is on disk."""
        self._calls.pop(call.name, None)
        self._finished.append(call)
        self._disconnecting.append((time.monotonic() + _FLUSH_SECONDS, fields))

    def _report_disconnected(self) -> None:
        """Send the ``disconnected`` events whose recording file is closed.

        The conference bridge closes a recorder asynchronously (in its clock thread, a frame
        or two after the recorder is destroyed); a WAV file is complete once its RIFF header
        holds the file's final size.
        """
        waiting = []
        for deadline, fields in self._disconnecting:
            path = fields["recording"]
            if path is None or _wav_complete(path):
                self.emit("disconnected", **fields)
            elif time.monotonic() > deadline:
                self.emit("disconnected", **fields, recording_error="WAV file not finalized")
            else:
                waiting.append((deadline, fields))
        self._disconnecting = waiting

    # -- commands ---------------------------------------------------------------------------

    def run_command(self, command: dict[str, Any]) -> dict[str, Any]:
        """Carry out one command; returns the reply's result or raises."""
        name = command.get("cmd")
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            raise PeerRuntimeError(f"unknown command {name!r}")
        args = {k: v for k, v in command.items() if k not in ("cmd", "seq")}
        result: dict[str, Any] = handler(**args)
        return result

    def _cmd_account(
        self, user: str, password: str, host: str, port: int, register: bool = True
    ) -> dict[str, Any]:
        if self._account is not None:
            raise PeerRuntimeError("this peer already has its account")
        config = pj.AccountConfig()
        config.idUri = f"sip:{user}@{host}:{port}"
        if register:
            config.regConfig.registrarUri = f"sip:{host}:{port}"
            config.regConfig.timeoutSec = 300
        config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        config.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        account = _Account(self)
        account.create(config)
        self._account = account
        return {}

    def _cmd_auto_answer(
        self, enabled: bool, play_wav: str | None = None, record_wav: str | None = None
    ) -> dict[str, Any]:
        self.auto_answer = enabled
        self._auto_play = play_wav
        self._auto_record = record_wav
        return {}

    def _cmd_call(
        self, uri: str, play_wav: str | None = None, record_wav: str | None = None
    ) -> dict[str, Any]:
        if self._account is None:
            raise PeerRuntimeError("create the account before calling")
        call = _Call(self, self._account, self._new_call_name("out"))
        call.set_media_files(play_wav, record_wav)
        call.makeCall(uri, pj.CallOpParam(True))
        self._calls[call.name] = call
        return {"call_id": call.name}

    def _cmd_answer(
        self,
        call_id: str,
        play_wav: str | None = None,
        record_wav: str | None = None,
        code: int = 200,
    ) -> dict[str, Any]:
        call = self._call(call_id)
        call.set_media_files(play_wav, record_wav)
        answer = pj.CallOpParam()
        answer.statusCode = code
        call.answer(answer)
        return {}

    def _cmd_dtmf(self, call_id: str, digits: str) -> dict[str, Any]:
        if not digits or any(d not in "0123456789*#ABCDabcd" for d in digits):
            raise PeerRuntimeError(f"not DTMF digits: {digits!r}")
        self._call(call_id).pending_digits += digits  # sent one by one by pump()
        return {}

    def _send_due_digits(self) -> None:
        """Send each call's next queued digit once the previous one has had its time."""
        now = time.monotonic()
        for call in self._calls.values():
            if call.pending_digits and now >= call.next_digit_at:
                param = pj.CallSendDtmfParam()
                param.digits = call.pending_digits[0]
                param.method = pj.PJSUA_DTMF_METHOD_RFC2833
                call.pending_digits = call.pending_digits[1:]
                call.next_digit_at = now + _DIGIT_SPACING
                try:
                    call.sendDtmf(param)
                except pj.Error as exc:
                    call.pending_digits = ""
                    self.emit("error", message=f"dtmf on {call.name}: {exc.info()}")

    def _cmd_hangup(self, call_id: str, code: int = 0) -> dict[str, Any]:
        param = pj.CallOpParam()
        param.statusCode = code
        self._call(call_id).hangup(param)
        return {}

    def _call(self, call_id: str) -> _Call:
        try:
            return self._calls[call_id]
        except KeyError:
            raise PeerRuntimeError(f"no call {call_id!r}") from None

    def _new_call_name(self, prefix: str) -> str:
        name = f"{prefix}{self._next_call}"
        self._next_call += 1
        return name

    # -- lifecycle --------------------------------------------------------------------------

    def pump(self, milliseconds: int = _POLL_MS) -> None:
        """Let pjsua2 handle its events, then release calls that ended."""
        self._endpoint.libHandleEvents(milliseconds)
        self._finished.clear()
        self._send_due_digits()
        self._report_disconnected()

    def shutdown(self) -> None:
        """Hang up every call (flushing recordings), unregister, destroy the library.

        Everything that needs the network is awaited here, so ``libDestroy`` can skip its
        own (one-second) network wait.
        """
        self._endpoint.hangupAllCalls()
        deadline = time.monotonic() + _SHUTDOWN_SECONDS
        while (self._calls or self._disconnecting) and time.monotonic() < deadline:
            self.pump()
        if self._account is not None:
            if self.registered:
                self._account.setRegistration(False)
                while self.registered and time.monotonic() < deadline:
                    self.pump()
            self._account.shutdown()
        self._calls.clear()
        self._finished.clear()
        self._account = None
        self._endpoint.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)


def _wav_complete(path: str) -> bool:
    """True when the WAV file's RIFF header holds its final size (the writer closed it)."""
    try:
        with open(path, "rb") as wav:
            head = wav.read(8)
            size = os.fstat(wav.fileno()).st_size
    except OSError:
        return False
    return head[:4] == b"RIFF" and int.from_bytes(head[4:8], "little") == size - 8 > 0


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Reader thread: stdin lines into the queue, ``None`` at end of input."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def _serve(peer: Peer, lines: queue.Queue[str | None]) -> None:
    """Main loop: pump pjsua2, run queued commands, until ``quit`` or end of input."""
    while True:
        peer.pump()
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                return
            if not line.strip():
                continue
            command = json.loads(line)
            seq = command.get("seq")
            if command.get("cmd") == "quit":
                peer.emit("reply", seq=seq, ok=True, result={})
                return
            try:
                result = peer.run_command(command)
            except (PeerRuntimeError, TypeError, pj.Error) as exc:
                message = exc.info() if isinstance(exc, pj.Error) else str(exc)
                peer.emit("reply", seq=seq, ok=False, error=message)
            else:
                peer.emit("reply", seq=seq, ok=True, result=result)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clock-rate", type=int, default=8000, choices=(8000, 16000))
    parser.add_argument("--log-level", type=int, default=1)
    args = parser.parse_args(argv)
    allow_core_dumps()  # a crash in pjsua2's C threads is then read by the client's gdb
    # The protocol keeps a private copy of stdout; fd 1 then points at stderr, so nothing
    # pjsua2 prints can corrupt the JSON stream.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    emit = _Emitter(protocol)
    peer = Peer(emit, args.clock_rate, args.log_level)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(sys.stdin, lines), daemon=True).start()
    emit("ready", sip_port=peer.sip_port, pid=os.getpid())
    try:
        _serve(peer, lines)
    finally:
        peer.shutdown()
    emit("exited")
    return 0


if __name__ == "__main__":
    sys.exit(main())
