"""The database: one writer with group commit, and a pool of read connections.

One asyncio task owns the write path. Callers queue a write operation (a function of a
`WriteTx`) and await its result. The writer takes everything queued, runs it on its own thread
in one `BEGIN IMMEDIATE` transaction, commits once, and only then answers the callers and hands
the batch's events to the bus: an acknowledged write is on disk, and an event is never published
for a write that did not commit.

One failing operation does not take the batch's others down, yet a batch has no savepoint per
operation (#16: a savepoint makes SQLite copy every page an operation touches into a statement
journal, again for each operation). An operation that fails having changed nothing (most do: a
check that refuses before writing; `total_changes` says) is simply dropped. One that fails after
changing rows rolls the whole transaction back, and the batch runs again with a savepoint per
operation, as it always did. So an operation may run twice: it must be a function of the
transaction, with no effects outside it (results go back through its return value, events through
`emit`). The batch's events are written with one `executemany` before the commit (earlier only
when an operation reads the events table itself).

Callers resume before subscribers are served, so a send's answer does not wait for its fan-out.
PERFORMANCE.md measured a dedicated writer thread with one hand-off per batch as the fastest
shape; reads go through aiosqlite connections on their own threads.

A batch of *light* operations only (`write(..., light=True)`: a message sent, small and bounded)
runs its statements on the event loop's thread instead, and only its COMMIT (the fsync) and the
audit anchor on the writer's thread (#16). The sqlite3 module lets go of the GIL around every
statement, so a writer thread has to win the GIL back after each one; with the event loop busy
on another core it waits up to the interpreter's switch interval (5 ms) each time, and a batch
of some forty statements crawled (a 2-thread experiment: 260 rows in 2 s beside a busy thread,
~15,000 on one core). The send benchmark's closed loop gained 3-5 %, up to 16 % with the
server's threads on both cores (bench/README.md). Anything else (sweeps, imports, unknown
sizes) keeps to the thread, so a long operation never stops the loop; so does a batch that
finds another process writing (the loop never waits on SQLite's lock) and every batch of a
shared file (`--workers`: its file lock) or of Postgres.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import mmap
import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson

from ..events import Event, now_rfc3339
from . import dialect, sqlite
from .migrate import apply_migrations

log = logging.getLogger("spacechat.store")

T = TypeVar("T")
MAX_BATCH = 512
_AGAIN: Any = object()  # _run_ops: run the batch again with a savepoint per operation


class StoreClosed(Exception):
    """The store is shutting down and takes no more writes."""


INSERT_EVENT = (
    "INSERT INTO events (seq, event_id, event_type, org_id, team_id, channel_id, thread_id, ts, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class WriteTx:
    """What a write operation sees: the connection inside the batch's transaction, and `emit`
    to append an event to the log in the same transaction."""

    __slots__ = ("_db", "_rows", "audit_head", "conn", "events")

    def __init__(self, db: Database, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        self._db = db
        self.conn = conn
        self.events: list[Event] = []
        # The batch's event rows not yet inserted (shared by its operations; see `flush`).
        self._rows = rows
        # The audit row this operation appended last, (id, hash): anchored once committed.
        self.audit_head: tuple[int, str] | None = None

    @property
    def dialect(self) -> str:
        """`dialect.SQLITE` or `dialect.POSTGRES`: which spelling a module with two versions runs."""
        return self._db.dialect

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        if self._rows and "events" in sql:  # it may read or change the log: insert what is pending first
            self.flush()
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())

    def flush(self) -> None:
        """Insert the batch's pending event rows, in seq order, with one statement."""
        self.conn.executemany(INSERT_EVENT, self._rows)
        self._rows.clear()

    def next_seq(self) -> int:
        """The seq the next logged event of this transaction will get."""
        return self._db._seq + 1

    def emit(self, event: Event) -> Event:
        """Append `event` to the log (unless live only) and publish it after commit."""
        if not event.live_only:
            self._db._seq += 1
            event.seq = self._db._seq
            event.encoded = None
            self._rows.append(
                (
                    event.seq,
                    event.event_id,
                    event.event_type,
                    event.org_id,
                    event.team_id,
                    event.channel_id,
                    event.thread_id,
                    event.timestamp,
                    event.to_json(),
                )
            )
        self.events.append(event)
        return event


@dataclass
class _Op:
    fn: Callable[[WriteTx], Any]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    events: list[Event] = field(default_factory=list)
    light: bool = False


class Database:
    """Owns the SQLite file: migrations, the writer, the readers. `postgres.PostgresDatabase` is
    its twin on a Postgres server (issue 17)."""

    dialect = dialect.SQLITE
    # Whether a batch of light operations may run its statements on the loop (the module's
    # docstring); not on Postgres, whose statements wait on the network.
    stages_on_loop = True

    def __init__(
        self,
        path: Path,
        *,
        migrations: Path,
        synchronous: str = "full",
        read_connections: int = 4,
        shared: bool = False,
    ) -> None:
        self.path = path
        self._migrations = migrations
        self._synchronous = synchronous
        self._read_count = read_connections
        # Several processes write this file (`spacechat serve --workers`, issue 16): each batch
        # holds `<file>.writer`'s lock and reads the log's last seq afresh (`_run_batch`).
        self.shared = shared
        self._writer_lock: int | None = None
        # With `shared`: `<file>.head`, mapped into every process, holds two native uint64s,
        # each read and written with one aligned 8-byte access (never torn):
        # [0] the log's newest committed seq, written under the writer's lock after each commit
        #     (so it only grows) and read without a lock (`committed_head`);
        # [1] a mark any process overwrites with a fresh random value when it revokes a
        #     credential (`credentials_revoked`), so the others drop cached ones (`revocation_mark`).
        self._head_map: mmap.mmap | None = None
        self._head: memoryview | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spacechat-writer")
        self._conn: Any = None
        self._queue: asyncio.Queue[_Op | None] = asyncio.Queue()
        self.commits = 0  # group commits since start (each one fsync): /metrics' spacechat_store_commits
        self._writer: asyncio.Task[None] | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._reader_list: list[aiosqlite.Connection] = []
        self._closed = False
        self._seq = 0
        self._seen = 0  # the newest seq committed by another gateway that reached this one (`saw`)
        self.applied_now: list[str] = []
        # Called with each committed batch's events, in seq order, in the step that answers the callers.
        self.on_commit: Callable[[list[Event]], None] = lambda events: None
        # Called on the writer's thread, after a commit that appended audit rows, with the newest
        # (id, hash): the audit chain's anchor outside the database (store/audit.py).
        self.on_audit: Callable[[int, str], None] | None = None

    # -- life cycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._open_writer)
        path = str(self.path)
        for _ in range(self._read_count):
            reader = aiosqlite.Connection(lambda: sqlite.connect(path, readonly=True), iter_chunk_size=256)
            await reader
            self._reader_list.append(reader)
            self._readers.put_nowait(reader)
        self._writer = asyncio.create_task(self._write_loop(), name="spacechat-writer")

    def _open_writer(self) -> Any:
        if self.shared:
            self._writer_lock = os.open(f"{self.path}.writer", os.O_RDWR | os.O_CREAT, 0o600)
            self._map_head()
        conn = sqlite.connect(str(self.path), synchronous=self._synchronous)
        self.applied_now = apply_migrations(conn, self._migrations, now=now_rfc3339())
        if self._writer_lock is not None:  # no other process commits while the log is read
            fcntl.flock(self._writer_lock, fcntl.LOCK_EX)
        try:
            row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
            seen = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            self._seq = max(row[0], seen[0] if seen else 0)
            if self._head is not None:
                # Where the log stands, not what the file says: it outlives the database (a
                # restored backup's log may end lower).
                self._head[0] = int(row[0])
        finally:
            if self._writer_lock is not None:
                fcntl.flock(self._writer_lock, fcntl.LOCK_UN)
        return conn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
        for reader in self._reader_list:
            await reader.close()
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            await loop.run_in_executor(self._executor, self._close_writer)
        self._executor.shutdown(wait=True)

    def _close_writer(self) -> None:
        # A clean shutdown folds the WAL back into the main file (or, while other processes
        # still use it, as much as it can without waiting for them).
        self._conn.execute(f"PRAGMA wal_checkpoint({'PASSIVE' if self.shared else 'TRUNCATE'})")
        self._conn.close()
        self._conn = None
        if self._writer_lock is not None:
            os.close(self._writer_lock)
            self._writer_lock = None
        # The shared head is unmapped once nothing holds it (a request reading it now may).
        self._head, self._head_map = None, None

    def _map_head(self) -> None:
        fd = os.open(f"{self.path}.head", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < mmap.PAGESIZE:
                os.ftruncate(fd, mmap.PAGESIZE)  # zeros: an empty log; growing it twice is harmless
            self._head_map = mmap.mmap(fd, mmap.PAGESIZE)
        finally:
            os.close(fd)
        self._head = memoryview(self._head_map)[:16].cast("Q")

    def committed_head(self) -> int | None:
        """With `shared`: the newest seq any process has committed to the log, read from shared
        memory (well under a microsecond: the workers' read barrier asks on every request,
        app.py `caught_up`). None otherwise: read the log (`log.head`)."""
        head = self._head
        return None if head is None else head[0]

    def credentials_revoked(self) -> None:
        """With `shared`: a credential was revoked here (its row committed): every process's
        next request reads credentials afresh (`revocation_mark` changed). A fresh random value
        rather than a count: two processes revoking at once cannot write the same value back."""
        shared = self._head
        if shared is not None:
            shared[1] = secrets.randbits(64)

    def revocation_mark(self) -> int:
        """With `shared`: what `credentials_revoked` last wrote, in any process (0 otherwise)."""
        shared = self._head
        return 0 if shared is None else shared[1]

    @property
    def last_seq(self) -> int:
        """The seq of the newest committed (or committing) event, as far as this process knows:
        its own commits' and, with several gateways, the newest relayed to it (`saw`)."""
        return max(self._seq, self._seen)

    def saw(self, seq: int) -> None:
        """A seq committed by another gateway reached this one (issue 17)."""
        if seq > self._seen:
            self._seen = seq

    # -- writes -------------------------------------------------------------------------------

    async def write(self, fn: Callable[[WriteTx], T], *, light: bool = False) -> T:
        """Run `fn` in the next group commit; return its result once committed. `fn` may run
        again, in the same batch's retries, when another operation fails half-way (see the
        module's docstring): it changes nothing outside the transaction. `light`: a few
        statements on a few rows, which may run on the event loop's thread (the docstring)."""
        if self._closed:
            raise StoreClosed("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Op(fn, future, light=light))
        return await future

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch, stopping = self._take_batch(first)
            try:
                staged = self._stage(batch) if self._may_stage(batch) else None
                if staged is not None:
                    await loop.run_in_executor(self._executor, self._commit_staged, *staged)
                else:
                    await loop.run_in_executor(self._executor, self._run_batch, batch)
                self.commits += 1
            except BaseException as exc:  # the whole batch failed to commit
                log.exception("group commit failed")
                for op in batch:
                    op.error, op.events = exc, []
            self._answer(batch)
        # Anything queued after the stop marker is refused, not silently dropped.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item.future.done():
                item.future.set_exception(StoreClosed("the store is closed"))

    def _take_batch(self, first: _Op) -> tuple[list[_Op], bool]:
        """`first` and whatever else is queued now (up to MAX_BATCH): one transaction, one fsync.
        True when the stop marker was met."""
        batch = [first]
        while len(batch) < MAX_BATCH and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _answer(self, batch: list[_Op]) -> None:
        """Answer the callers first (their tasks are queued to run before any subscriber's),
        then publish, in this same step, so caches are current before a caller runs again."""
        for op in batch:
            if op.future.done():
                continue
            if op.error is not None:
                op.future.set_exception(op.error)
            else:
                op.future.set_result(op.result)
        committed = [event for op in batch for event in op.events]
        if committed:
            try:
                self.on_commit(committed)
            except Exception:  # a broken subscriber must not lose the callers' answers
                log.exception("publishing committed events failed")

    def _run_batch(self, batch: list[_Op]) -> None:
        if self._writer_lock is None:
            self._run_batch_locked(batch)
            return
        # Another process may hold the write lock. SQLite's own lock would have this one retry
        # in sleeps of 1, 2, 5, 10 ... ms (its busy handler); a file lock wakes it the moment the
        # other commits, and is held until the audit anchor is written, so anchors stay in order.
        fcntl.flock(self._writer_lock, fcntl.LOCK_EX)
        try:
            self._run_batch_locked(batch)
            head = self._head
            if head is not None and self._seq > head[0]:  # under the lock: it never goes back
                head[0] = self._seq
        finally:
            fcntl.flock(self._writer_lock, fcntl.LOCK_UN)

    def _run_batch_locked(self, batch: list[_Op]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        if self.shared:  # the other writers' commits moved the log on: its seqs follow theirs
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            self._seq = max(self._seq, row[0] if row else 0)
        staged = self._run_in_transaction(batch)
        assert staged is not None  # on this thread a batch is run again here, not handed back
        self._commit_staged(*staged)

    def _may_stage(self, batch: list[_Op]) -> bool:
        """Whether this batch runs its statements on the loop: light operations only, on a file
        this process alone writes (the module's docstring)."""
        return self.stages_on_loop and self._writer_lock is None and all(op.light for op in batch)

    def _stage(self, batch: list[_Op]) -> tuple[Any, int] | None:
        """On the loop: begin, and run the batch's operations; committing is `_commit_staged`'s,
        on the writer's thread. None, having done nothing, when another process holds the
        write lock: the loop does not wait for it (the thread does, in `_run_batch`)."""
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return None
        finally:
            conn.execute(f"PRAGMA busy_timeout = {sqlite.BUSY_TIMEOUT_MS}")
        return self._run_in_transaction(batch, on_loop=True)

    def _run_in_transaction(self, batch: list[_Op], *, on_loop: bool = False) -> tuple[Any, int] | None:
        """The batch's operations in the transaction just begun: the audit head to anchor after
        the commit, and the seq to go back to if it fails. When an operation failed half-way the
        batch runs again with a savepoint each, in a new transaction; on the loop that is left
        to the writer's thread (None: rolled back, nothing done), whose BEGIN may have to wait
        for another process."""
        conn = self._conn
        seq_at_start = self._seq
        try:
            audit_head = self._run_ops(batch, savepoints=False)
            if audit_head is _AGAIN:  # an operation failed half-way: all again, each in a savepoint
                self._rollback(seq_at_start)
                for op in batch:
                    op.result, op.error, op.events = None, None, []
                if on_loop:
                    return None
                conn.execute("BEGIN IMMEDIATE")
                audit_head = self._run_ops(batch, savepoints=True)
        except BaseException:
            self._rollback(seq_at_start)
            raise
        return audit_head, seq_at_start

    def _commit_staged(self, audit_head: Any, seq_at_start: int) -> None:
        """Commit (the fsync) and anchor the audit log: on the writer's thread."""
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback(seq_at_start)
            raise
        self._anchor(audit_head)

    def _rollback(self, seq_at_start: int) -> None:
        self._seq = seq_at_start
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _run_ops(self, batch: list[_Op], *, savepoints: bool) -> Any:
        """Run the batch's operations in the open transaction; the newest audit head, or _AGAIN
        when (without savepoints) an operation failed after changing rows."""
        conn = self._conn
        rows: list[tuple[Any, ...]] = []
        audit_head: tuple[int, str] | None = None
        for op in batch:
            seq_before, changes_before, pending_before = self._seq, conn.total_changes, len(rows)
            tx = WriteTx(self, conn, rows)
            if savepoints:
                conn.execute("SAVEPOINT op")
            try:
                op.result = op.fn(tx)
            except Exception as exc:
                if savepoints:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                elif conn.total_changes != changes_before:
                    return _AGAIN
                del rows[pending_before:]
                self._seq = seq_before
                op.error = exc
                continue
            if savepoints:
                if rows:  # inserted inside its own savepoint, so a later ROLLBACK TO keeps them
                    tx.flush()
                conn.execute("RELEASE op")
            op.events = tx.events
            audit_head = tx.audit_head or audit_head
        if rows:
            WriteTx(self, conn, rows).flush()
        return audit_head

    def _anchor(self, audit_head: tuple[int, str] | None) -> None:
        if audit_head is not None and self.on_audit is not None:
            try:
                self.on_audit(*audit_head)
            except Exception:  # the rows are committed; a missed checkpoint is caught up at start
                log.exception("anchoring the audit log failed")

    # -- reads --------------------------------------------------------------------------------

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        reader = await self._readers.get()
        try:
            return list(await reader.execute_fetchall(sql, params))
        finally:
            self._readers.put_nowait(reader)

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]


def dumps(value: Any) -> str:
    """JSON text for a TEXT column."""
    return orjson.dumps(value).decode()


def loads(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)
