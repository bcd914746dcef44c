"""The dialplan fallback's ledger: the calls the daemon never saw get their final row.

When the Stasis app is not connected (the daemon is killed or restarting), Asterisk answers a
call with the ``callcontrol-fallback`` context (dialplan/extensions.conf), which appends two
lines to ``${ASTLOGDIR}/callcontrol-fallback.csv`` itself: ``start`` when the call enters the
fallback, ``end`` from a hangup handler. One line::

    1,start|end,UNIQUEID,ENTERED,ENDED,STASISSTATUS,CALL-ID,CALLER-NUM,CALLER-NAME,EXTEN,
    DIALSTATUS,HANGUPCAUSE

(epoch seconds; the text a caller controls is URI-encoded, so it holds no ``,`` nor newline).

:class:`FallbackLedger` imports it: for each call of the ledger that has no row yet (neither its
channel id, which is its ``UNIQUEID``, nor its SIP Call-ID is in the store), it appends
``CallOpened``, a ``fallback_handled`` timeline entry and ``CallClosed``, with record ids derived
from the ledger entry, so importing twice changes nothing:

    STASISSTATUS=FAILED (the app was down)       -> ``failed``, "daemon unavailable: ..."
    any other status (the daemon ``continue``d it
    without opening a row: new calls while it stops)  -> ``failed``, "daemon stopping: ..."
    either, when the overflow target answered     -> ``overflow``
    a ``start`` line without ``end``, Asterisk
    started again since                          -> ``lost`` (closed at Asterisk's start)
    a ``start`` line without ``end`` otherwise   -> nothing yet: the call is still in the fallback

Calls the daemon ``continue``d have rows already: they are skipped, but only once the store
writer has nothing pending (their row may still be on its way to the database). Entries older
than the store's first import (``since``, kept in ``fallback-ledger.json`` next to the journal)
are not this store's calls: a new store does not import a PBX's whole history.

:class:`LedgerFollower` (owned by the app) is recovery's hook (at start and on every ARI
reconnect): it imports now and keeps importing every :data:`POLL_SECONDS` while the daemon
runs, so a call still in the fallback when the daemon came back gets its row when it ends.
The ledger is rotated to ``callcontrol-fallback.csv.1`` past :data:`ROTATE_BYTES` once every
entry in it is settled; Asterisk opens the file for each line, so it simply starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from callcontrol.ari import protocol
from callcontrol.errors import CallControlError
from callcontrol.logging import get_logger
from callcontrol.private_files import write_private
from callcontrol.store.db import session_factory
from callcontrol.store.records import (
    CallClosed,
    CallEvent,
    CallOpened,
    InteractionLog,
    Outcome,
    Record,
)
from callcontrol.store.tables import CallRow

if TYPE_CHECKING:
    from callcontrol.app import App

log = get_logger("callcontrol.fallback_ledger")

LEDGER_NAME = "callcontrol-fallback.csv"  # in Asterisk's log folder (ASTLOGDIR)
STATE_NAME = "fallback-ledger.json"  # in the journal folder
ROTATE_BYTES = 1024 * 1024
POLL_SECONDS = 2.0
EVENT_KIND = "fallback_handled"
REASON_APP_DOWN = "daemon unavailable: handled by the dialplan fallback"
REASON_CONTINUED = "daemon stopping: handled by the dialplan fallback"
REASON_LOST = "cut by an Asterisk restart while in the dialplan fallback"
_FIELDS = 12
_VERSION = "1"
_NAMESPACE = uuid.UUID("0b5f4d1e-8f2a-4c7e-9a51-3c2d6f1e7a90")
_QUERY_CHUNK = 400


@dataclass(frozen=True)
class FallbackCall:
    """One call of the ledger: its ``end`` line, or its ``start`` line while it lasts."""

    uniqueid: str
    entered: float  # epoch seconds it entered the fallback
    ended: float | None  # None: no ``end`` line (yet)
    stasis_status: str
    sip_call_id: str
    caller_number: str
    caller_name: str
    extension: str
    dial_status: str = ""
    hangup_cause: str = ""

    @property
    def key(self) -> str:
        """What identifies the entry: the channel's unique id and when it entered."""
        return f"{self.uniqueid}@{self.entered:.3f}"

    @property
    def app_down(self) -> bool:
        """Stasis returned ``FAILED``: the app was not connected, the daemon never saw it."""
        return self.stasis_status == "FAILED"

    @property
    def disposition(self) -> str:
        """``app_down`` or ``continued`` (the daemon sent it to the fallback)."""
        return "app_down" if self.app_down else "continued"

    def record_id(self, part: str) -> str:
        """A record id derived from the entry (the same at every import)."""
        return uuid.uuid5(_NAMESPACE, f"{self.key}/{part}").hex


def parse_line(line: str) -> FallbackCall | None:
    """One ledger line, or ``None`` when it is not a complete line of a known version."""
    parts = line.rstrip("\r\n").split(",")
    if len(parts) != _FIELDS or parts[0] != _VERSION or parts[1] not in ("start", "end"):
        return None
    kind, uniqueid = parts[1], parts[2]
    try:
        entered = float(parts[3])
        ended = float(parts[4]) if parts[4] else None
    except ValueError:
        return None
    if not uniqueid or (kind == "end") != (ended is not None):
        return None
    text = [unquote(p, errors="replace") for p in parts[6:10]]
    return FallbackCall(
        uniqueid=uniqueid, entered=entered, ended=ended, stasis_status=parts[5],
        sip_call_id=text[0], caller_number=text[1], caller_name=text[2],
        extension=text[3] or "s", dial_status=parts[10],
        hangup_cause="" if parts[11] in ("", "0") else parts[11],
    )


def collect(lines: Iterable[str]) -> dict[str, FallbackCall]:
    """The calls of the ledger by :attr:`FallbackCall.key` (an ``end`` line wins over its
    ``start``); unreadable lines are skipped."""
    calls: dict[str, FallbackCall] = {}
    for line in lines:
        call = parse_line(line)
        if call is None:
            continue
        known = calls.get(call.key)
        if known is None or call.ended is not None:
            calls[call.key] = call
    return calls


@dataclass(frozen=True)
class Closing:
    """How an imported call's row ends."""

    outcome: Outcome
    reason: str
    at: datetime


def closing_for(call: FallbackCall, pbx_started: datetime | None) -> Closing | None:
    """How the row of ``call`` ends, or ``None`` while the call is still in the fallback."""
    if call.ended is not None:
        reason = REASON_APP_DOWN if call.app_down else REASON_CONTINUED
        if call.dial_status == "ANSWER":
            return Closing("overflow", f"{reason}; the overflow target answered",
                           _at(call.ended))
        return Closing("failed", reason, _at(call.ended))
    if pbx_started is not None and pbx_started > _at(call.entered):
        return Closing("lost", REASON_LOST, pbx_started)
    return None


def records_for(call: FallbackCall, closing: Closing) -> list[Record]:
    """The records giving ``call`` its final row (ids derived from the ledger entry)."""
    call_id = call.record_id("call")
    entered = _at(call.entered)
    return [
        CallOpened(record_id=call.record_id("opened"), at=entered, call_id=call_id,
                   channel_id=call.uniqueid, sip_call_id=call.sip_call_id or None,
                   caller_number=call.caller_number, caller_name=call.caller_name,
                   extension=call.extension),
        CallEvent(record_id=call.record_id("event"), at=entered, call_id=call_id,
                  kind=EVENT_KIND,
                  data={"disposition": call.disposition, "stasis_status": call.stasis_status,
                        "dial_status": call.dial_status, "outcome": closing.outcome,
                        "reason": closing.reason}),
        CallClosed(record_id=call.record_id("closed"), at=closing.at, call_id=call_id,
                   outcome=closing.outcome, hangup_cause=call.hangup_cause,
                   reason=closing.reason),
    ]


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class FallbackLedger:
    """Imports one ledger file (and its rotated predecessor) into the interaction log."""

    def __init__(self, path: Path, state_file: Path, engine: AsyncEngine,
                 interaction_log: InteractionLog, *, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.path = path
        self.rotated = path.with_name(path.name + ".1")
        self.state_file = state_file
        self.engine = engine
        self.interaction_log = interaction_log
        self.rotate_bytes = rotate_bytes
        self.since: float | None = None
        self._settled: set[str] = set()
        self._signature: tuple[Any, ...] | None = None
        self._waiting = False
        self._lock = asyncio.Lock()

    async def sync(self, *, pbx_started: datetime | None = None, store_idle: bool = True) -> int:
        """Import the ledger's calls the store has no row for; returns how many were imported.

        ``pbx_started``: when the running Asterisk started (entries without an ``end`` line
        from before are ``lost``); ``store_idle``: the store writer has nothing pending (only
        then are ``continue``d calls checked, their rows being in the database by then).
        """
        async with self._lock:
            since = self._since()
            signature = (self._stat(self.rotated), self._stat(self.path))
            if signature == self._signature and not self._waiting:
                return 0
            calls = await asyncio.to_thread(self._read)
            ready: list[tuple[FallbackCall, Closing]] = []
            waiting = False
            for key, call in calls.items():
                if key in self._settled or call.entered < since:
                    continue
                closing = closing_for(call, pbx_started)
                if closing is None or not (call.app_down or store_idle):
                    waiting = True
                    continue
                ready.append((call, closing))
            channels, sip_call_ids = await self._known(ready)
            imported = 0
            for call, closing in ready:
                self._settled.add(call.key)
                if call.uniqueid in channels or call.sip_call_id in sip_call_ids:
                    continue
                for record in records_for(call, closing):
                    self.interaction_log.append(record)
                imported += 1
                log.info("fallback_call_imported", call_id=call.record_id("call"),
                         channel_id=call.uniqueid, sip_call_id=call.sip_call_id,
                         outcome=closing.outcome, disposition=call.disposition)
            self._settled &= set(calls)
            self._signature, self._waiting = signature, waiting
            if not waiting:
                self._rotate_if_due()
            return imported

    # -- the files --------------------------------------------------------------------------
    def _since(self) -> float:
        """The time of this store's first import (written then; later entries are its calls)."""
        if self.since is not None:
            return self.since
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            self.since = float(json.loads(self.state_file.read_text())["since"])
            return self.since
        since = time.time()
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.state_file,
                      json.dumps({"since": since, "ledger": str(self.path)}) + "\n")
        log.info("fallback_ledger_since", since=since, ledger=str(self.path))
        self.since = since
        return since

    @staticmethod
    def _stat(path: Path) -> tuple[int, int, int] | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _read(self) -> dict[str, FallbackCall]:
        lines: list[str] = []
        for path in (self.rotated, self.path):
            try:
                text = path.read_bytes().decode(errors="replace")
            except FileNotFoundError:
                continue
            complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
            lines.extend(complete.splitlines())
        return collect(lines)

    def _rotate_if_due(self) -> None:
        try:
            if self.path.stat().st_size <= self.rotate_bytes:
                return
            os.replace(self.path, self.rotated)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("fallback_ledger_rotate_failed", ledger=str(self.path), error=str(exc))
            return
        log.info("fallback_ledger_rotated", ledger=str(self.path))

    # -- the store --------------------------------------------------------------------------
    async def _known(self, ready: Sequence[tuple[FallbackCall, Closing]]
                     ) -> tuple[set[str], set[str]]:
        """The channel ids and SIP Call-IDs among ``ready`` that already have a row."""
        channels: set[str] = set()
        sip_call_ids: set[str] = set()
        calls = [call for call, _ in ready]
        if not calls:
            return channels, sip_call_ids
        async with session_factory(self.engine)() as session:
            for start in range(0, len(calls), _QUERY_CHUNK):
                chunk = calls[start:start + _QUERY_CHUNK]
                ids = [c.uniqueid for c in chunk]
                sips = [c.sip_call_id for c in chunk if c.sip_call_id]
                query = sa.select(col(CallRow.channel_id), col(CallRow.sip_call_id)).where(
                    sa.or_(col(CallRow.channel_id).in_(ids), col(CallRow.sip_call_id).in_(sips)))
                for channel_id, sip_call_id in (await session.execute(query)).all():
                    channels.add(channel_id)
                    if sip_call_id:
                        sip_call_ids.add(sip_call_id)
        return channels, sip_call_ids


# -- the daemon's hook ------------------------------------------------------------------------

class LedgerFollower:
    """The ledger of one running daemon and the task that keeps importing it (owned by the
    app: :meth:`close` on shutdown)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.ledger: FallbackLedger | None = None
        self.pbx_started: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def resync(self, pbx_started: datetime | None) -> None:
        """Recovery's hook (at start and on every ARI reconnect): import the fallback ledger of
        the Asterisk the app talks to now, then every :data:`POLL_SECONDS` until closed.

        ``pbx_started`` is when that Asterisk started (``None``: unknown). Never raises: a ledger
        that cannot be read or a store that is down only delays the import.
        """
        app = self.app
        path = await _ledger_path(app)
        if path is None:
            return
        if self.ledger is None or self.ledger.path != path:
            state = app.config.path(app.config.database.journal_dir) / STATE_NAME
            self.ledger = FallbackLedger(path, state, app.engine, app.store)
        if pbx_started is not None:
            self.pbx_started = pbx_started
        await self._sync()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(), name="fallback-ledger")

    async def close(self) -> None:
        """Stop following the ledger."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sync(self) -> None:
        ledger = self.ledger
        if ledger is None:
            return
        try:
            await ledger.sync(pbx_started=self.pbx_started,
                              store_idle=self.app.store.pending == 0)
        except Exception as exc:  # the store down, the file unreadable: retried at the next poll
            log.warning("fallback_ledger_import_failed", ledger=str(ledger.path),
                        error=f"{type(exc).__name__}: {exc}")

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            await self._sync()


async def _ledger_path(app: App) -> Path | None:
    """The host path of the ledger: Asterisk's log folder (ASTLOGDIR) through the path map."""
    request = protocol.Request("GET", "/asterisk/variable", {"variable": "ASTLOGDIR"})
    try:
        answer: Any = await app.ari.request(request)
        folder = str(answer["value"]) if isinstance(answer, dict) else ""
        return app.paths.to_host(PurePosixPath(folder) / LEDGER_NAME)
    except (CallControlError, KeyError, ValueError) as exc:
        log.warning("fallback_ledger_unknown", error=str(exc))
        return None
