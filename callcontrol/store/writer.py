"""The single database writer behind the journal: :class:`StoreWriter`.

Flow of a record (DECISIONS.md, "Journal first")::

    append(record) --write()--> journal segment --+--> bounded memory queue --+
                                                  |   (while it has room)     +--> writer task
                                                  +--> read back from the ----+    batches, one
                                                       journal (queue full,        transaction per
                                                       or backlog at start)        batch, retries

The writer task takes records strictly in journal order: once the memory queue was full,
every later record is read back from the journal until the reader has caught up, and only then
does the memory queue take records again. A batch that fails (database down, commit result
unknown) is retried as a whole after ``retry_interval``; :mod:`callcontrol.store.apply` makes a
replayed record change nothing. After each commit the journal is told which sequence number is
confirmed, so it can drop segments; records not confirmed when the process dies are replayed
at the next :meth:`StoreWriter.start`.

When the journal cannot be written (disk full, I/O error) nothing is refused: the record waits
in a bounded in-memory backlog, in order, and the journal's link in ``/health`` is down. The
writer task tries to journal the backlog again every ``retry_interval``; meanwhile, once every
journaled record is in the database, it writes the backlog's oldest records straight to the
database (they are then durable there and leave the backlog). When space returns, what is left
of the backlog is journaled in order and written once. Only a backlog over
``backlog_max`` (journal and database both failing for long) drops records: each is counted in
``/health`` (``journal.dropped``) and logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from callcontrol.config import DatabaseConfig
from callcontrol.errors import StoreError
from callcontrol.links import LinkState
from callcontrol.logging import get_logger
from callcontrol.store.apply import apply_batch
from callcontrol.store.journal import Journal, JournalReader
from callcontrol.store.records import Record

log = get_logger(__name__)

Entry = tuple[int, Record]


class StoreWriter:
    """Implements :class:`~callcontrol.store.records.InteractionLog` on a journal and a database.

    ``engine`` belongs to the caller (it is not disposed here); the schema must be migrated
    first (:func:`callcontrol.store.migrations.upgrade`). Health is in :attr:`link` and
    :attr:`pending`.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        journal_dir: Path,
        *,
        batch_max: int = 500,
        batch_interval: float = 0.2,
        memory_queue_max: int = 10000,
        retry_interval: float = 0.5,
        write_timeout: float = 10.0,
        probe_interval: float = 5.0,
        segment_bytes: int = 8 * 1024 * 1024,
        backlog_max: int = 100_000,
    ) -> None:
        self._engine = engine
        self._journal = Journal(journal_dir, segment_bytes=segment_bytes)
        self._batch_max = batch_max
        self._batch_interval = batch_interval
        self._memory_max = memory_queue_max
        self._retry_interval = retry_interval
        self._write_timeout = write_timeout
        self._probe_interval = probe_interval
        self._queue: collections.deque[Entry] = collections.deque()
        self._backlog: collections.deque[Record] = collections.deque()
        self._backlog_max = backlog_max
        self._journal_retry_at = float("-inf")
        self._journal_failing = False  # the last append (or fsync) failed
        self.dropped = 0
        self._reader: JournalReader | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Condition()
        self._closing = False
        self._last_batch = float("-inf")
        self._last_contact = float("-inf")
        self.link = LinkState("db")
        self.journal_link = LinkState("journal")

    @classmethod
    def from_config(
        cls, engine: AsyncEngine, config: DatabaseConfig, journal_dir: Path
    ) -> StoreWriter:
        """A writer with the batching and retry settings of ``config`` (``journal_dir``
        already resolved against the config's base folder)."""
        return cls(
            engine,
            journal_dir,
            batch_max=config.batch_max,
            batch_interval=config.batch_interval,
            memory_queue_max=config.memory_queue_max,
            retry_interval=config.retry_interval,
            write_timeout=config.write_timeout,
            probe_interval=config.probe_interval,
            segment_bytes=config.journal_segment_bytes,
            backlog_max=config.journal_backlog_max,
        )

    # -- the InteractionLog port ----------------------------------------------------------

    def append(self, record: Record) -> None:
        """Journal ``record`` and queue it for the database; never waits on the database or
        the journal's disk (a record the journal refuses waits in the backlog).

        Raise :class:`StoreError` if the writer is not started.
        """
        if self._task is None or self._closing:
            raise StoreError("the store writer is not running")
        if self._backlog or not self._journal_one(record):
            self._hold(record)
            self._wakeup.set()
            return
        pending = self.pending
        if pending == 1 or pending >= self._batch_max:
            # the writer waits for the first record, then for a full batch or the interval
            # (it looks again after every batch): one wake-up per batch, not per record
            self._wakeup.set()

    def _journal_one(self, record: Record) -> bool:
        """Append ``record`` to the journal and queue it; False when the journal refused it."""
        spilling = self._reader is not None or len(self._queue) >= self._memory_max
        reader = None
        if spilling and self._reader is None:
            log.warning("store_queue_full", queued=len(self._queue), pending=self.pending)
            reader = self._reader = self._journal.reader_at_tail()
        try:
            seq = self._journal.append(record)
        except StoreError as exc:
            if reader is not None:
                reader.close()
                self._reader = None
            self._journal_failed(exc)
            return False
        self._journal_failing = False
        if not spilling:
            self._queue.append((seq, record))
        return True

    def _hold(self, record: Record) -> None:
        """Keep ``record`` in the backlog (drop and count it past ``backlog_max``)."""
        if len(self._backlog) < self._backlog_max:
            self._backlog.append(record)
            return
        self.dropped += 1
        log.error("journal_backlog_full_record_dropped", record_id=record.record_id,
                  dropped=self.dropped, backlog=len(self._backlog))

    def _journal_failed(self, exc: StoreError) -> None:
        if self.journal_link.up:
            log.error("journal_down", error=str(exc), backlog=len(self._backlog))
        self.journal_link.mark_down(str(exc)[:300])
        self._journal_failing = True
        self._journal_retry_at = asyncio.get_running_loop().time() + self._retry_interval

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Open the journal and start the writer task; unconfirmed records are replayed first."""
        if self._task is not None:
            raise StoreError("the store writer is already started")
        self._journal.open()
        self.journal_link.mark_up()
        if self._journal.last_seq > self._journal.confirmed:
            log.info("store_replay", records=self.pending, journal=str(self._journal.directory))
            self._reader = self._journal.reader(self._journal.confirmed)
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def flush(self) -> None:
        """Wait until every record appended so far is in the database (bound it with
        ``asyncio.timeout``); raise :class:`StoreError` if the writer is not running."""
        target = self._journal.last_seq
        async with self._progress:
            while self._journal.confirmed < target or self._backlog:
                if self._task is None or self._task.done():
                    raise StoreError("the store writer is not running")
                await self._progress.wait()

    async def close(self, grace: float | None = None) -> None:
        """Write everything appended so far, then stop.

        After ``grace`` seconds (database still down), stop anyway: what is not written stays
        in the journal and is replayed at the next start.
        """
        task = self._task
        if task is None:
            return
        self._closing = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            log.warning("store_close_timeout", pending=self.pending)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            if self._reader is not None:
                self._reader.close()
            self._journal_backlog()
            if self._backlog:
                log.error("store_close_backlog_lost", records=len(self._backlog),
                          error=self.journal_link.last_error)
            self._journal.close()

    # -- health ---------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records not yet confirmed in the database (journaled or in the backlog)."""
        return self._journaled_pending + len(self._backlog)

    @property
    def _journaled_pending(self) -> int:
        return self._journal.last_seq - self._journal.confirmed

    def health(self) -> dict[str, Any]:
        """The database link for ``/health``: ``up``, ``last_up``, ``last_down``,
        ``reconnects``, ``last_error`` and ``pending``."""
        return {**self.link.snapshot(), "pending": self.pending}

    def journal_health(self) -> dict[str, Any]:
        """The journal for ``/health``: the link fields, ``backlog`` (records waiting for the
        journal) and ``dropped`` (records lost because the backlog was full)."""
        return {**self.journal_link.snapshot(), "backlog": len(self._backlog),
                "dropped": self.dropped}

    # -- the writer task ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while (batch := await self._next_batch()) is not None:
                await self._sync()
                if batch:
                    await self._write([record for _, record in batch])
                    seq = batch[-1][0]
                else:
                    log.warning(
                        "journal_gap", after=self._journal.confirmed, last=self._journal.last_seq
                    )
                    seq = self._journal.last_seq
                self._journal.confirm(seq)
                async with self._progress:
                    self._progress.notify_all()
        finally:  # wake flush() waiters, which then see the writer has stopped
            if not self._closing:
                self.link.mark_down("the store writer task stopped")
            async with self._progress:
                self._progress.notify_all()

    async def _next_batch(self) -> list[Entry] | None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self._backlog and now >= self._journal_retry_at:
                self._journal_backlog()
            pending = self._journaled_pending
            if pending == 0 and self._backlog:
                timeout = self._last_batch + self._batch_interval - now
                if timeout <= 0 or len(self._backlog) >= self._batch_max or self._closing:
                    self._last_batch = now
                    await self._write_backlog()
                    continue
            elif pending == 0:
                if self._closing:
                    await self._sync()
                    return None
                interval = self._probe_interval if self.link.up else self._retry_interval
                timeout = self._last_contact + interval - now
                if timeout <= 0:
                    await self._sync()
                    await self._probe()
                    continue
            else:
                timeout = self._last_batch + self._batch_interval - now
                if timeout <= 0 or pending >= self._batch_max or self._closing:
                    self._last_batch = now
                    return self._take()
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    def _journal_backlog(self) -> None:
        """Journal the backlog's records in order until the journal refuses one."""
        while self._backlog:
            if not self._journal_one(self._backlog[0]):
                return
            self._backlog.popleft()

    async def _write_backlog(self) -> None:
        """Write the backlog's oldest records straight to the database (every journaled
        record is already there, so the order holds), then forget them. One attempt: after a
        failure the next waits ``retry_interval``, and the journal is tried again meanwhile."""
        records = list(itertools.islice(self._backlog, self._batch_max))
        try:
            await asyncio.wait_for(self._commit(records), self._write_timeout)
        except Exception as exc:  # retried by the writer loop, like a journaled batch
            self._mark_down(exc)
            self._last_batch += self._retry_interval - self._batch_interval
            return
        self._mark_up()
        for _ in records:
            self._backlog.popleft()
        async with self._progress:
            self._progress.notify_all()

    async def _sync(self) -> None:
        """fsync the journal; a failure marks the journal down until an fsync succeeds."""
        try:
            await self._journal.sync()
        except StoreError as exc:
            self._journal_failed(exc)
            return
        if not self.journal_link.up and not self._backlog and not self._journal_failing:
            log.info("journal_up", pending=self.pending)
            self.journal_link.mark_up()

    def _take(self) -> list[Entry]:
        batch: list[Entry] = []
        while self._queue and len(batch) < self._batch_max:
            batch.append(self._queue.popleft())
        if self._reader is not None and not self._queue and len(batch) < self._batch_max:
            batch.extend(self._reader.read(self._batch_max - len(batch)))
            read_to = batch[-1][0] if batch else self._journal.confirmed
            if read_to >= self._journal.last_seq or not batch:
                self._reader.close()
                self._reader = None
        return batch

    async def _write(self, records: list[Record]) -> None:
        while True:
            try:
                await asyncio.wait_for(self._commit(records), self._write_timeout)
            except Exception as exc:  # every failure is retried: order kept, nothing dropped
                self._mark_down(exc)
                await self._sync()
                await asyncio.sleep(self._retry_interval)
                if self._backlog:  # the journal may take the backlog meanwhile
                    self._journal_backlog()
                continue
            self._mark_up()
            return

    async def _commit(self, records: list[Record]) -> None:
        async with self._engine.begin() as conn:
            await apply_batch(conn, records)

    async def _probe(self) -> None:
        try:
            async with asyncio.timeout(self._write_timeout), self._engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # a failed probe only marks the link down
            self._mark_down(exc)
        else:
            self._mark_up()

    def _mark_down(self, exc: BaseException) -> None:
        self._last_contact = asyncio.get_running_loop().time()
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        if self.link.up or self.link.last_error is None:
            log.warning("db_down", error=error, pending=self.pending)
        else:
            log.debug("db_retry", error=error, pending=self.pending)
        self.link.mark_down(error)

    def _mark_up(self) -> None:
        self._last_contact = asyncio.get_running_loop().time()
        if not self.link.up:
            log.info("db_up", pending=self.pending, reconnects=self.link.reconnects)
        self.link.mark_up()
