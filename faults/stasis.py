"""Which calls reached the daemon's Stasis app, from Asterisk's own dialplan events (AMI).

The inbound dialplan runs ``Stasis(APP,inbound,<SIP Call-ID>)`` and, when Stasis returns,
``NoOp(callcontrol fallback: STASISSTATUS=...)``. AMI's ``Newexten`` events for those two give,
per SIP Call-ID, that the call reached Asterisk's dialplan, and whether it went to the fallback
because the app was not connected (``FAILED``: the daemon never saw the call). The recorder
reconnects by itself, since Asterisk restarts during the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from bench.measure import read_ami_message


@dataclass
class StasisEntry:
    """One channel of a caller in the inbound dialplan."""

    sip_call_id: str
    uniqueid: str
    at: float  # epoch seconds the event was read
    fallback_status: str | None = None  # STASISSTATUS when it landed in the fallback


@dataclass
class StasisRecorder:
    """Keeps reading ``Newexten`` events from AMI until :meth:`close`."""

    host: str
    port: int
    user: str
    secret: str
    entries: dict[str, StasisEntry] = field(default_factory=dict)  # by uniqueid
    disconnects: int = 0
    _task: asyncio.Task[None] | None = None
    _connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, time_limit: float = 10.0) -> None:
        """Start reading; return once the first login succeeded."""
        self._task = asyncio.create_task(self._run(), name="faults-ami")
        await asyncio.wait_for(self._connected.wait(), time_limit)

    def by_call_id(self) -> dict[str, list[StasisEntry]]:
        """The entries grouped by SIP Call-ID."""
        out: dict[str, list[StasisEntry]] = {}
        for entry in self.entries.values():
            out.setdefault(entry.sip_call_id, []).append(entry)
        return out

    async def close(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            writer: asyncio.StreamWriter | None = None
            try:
                reader, opened = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), 5)
                writer = opened
                await asyncio.wait_for(reader.readline(), 5)  # banner
                opened.write(f"Action: Login\r\nUsername: {self.user}\r\nSecret: {self.secret}"
                             "\r\nEvents: dialplan\r\n\r\n".encode())
                await opened.drain()
                reply = await asyncio.wait_for(read_ami_message(reader), 5)
                if reply.get("Response") != "Success":
                    raise ConnectionError(f"AMI login refused: {reply.get('Message')}")
                self._connected.set()
                while True:
                    self._take(await read_ami_message(reader))
            except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
                if self._connected.is_set():
                    self.disconnects += 1
            finally:
                if writer is not None:
                    writer.close()
            await asyncio.sleep(0.3)

    def _take(self, event: dict[str, str]) -> None:
        if event.get("Event") != "Newexten":
            return
        app, data, uid = event.get("Application"), event.get("AppData", ""), event.get("Uniqueid")
        if not uid:
            return
        if app == "Stasis":
            parts = data.split(",", 2)
            if len(parts) == 3 and parts[1] == "inbound" and uid not in self.entries:
                self.entries[uid] = StasisEntry(parts[2], uid, time.time())
        elif app == "NoOp" and "STASISSTATUS=" in data and uid in self.entries:
            self.entries[uid].fallback_status = data.rsplit("=", 1)[1].strip() or "none"


