"""The Postgres twin of `Database` (issue 17): the same interface, the same one writer with group
commit, on a Postgres server named by `storage.url`.

The writer is a thread with a synchronous psycopg connection, as the SQLite writer is: one
transaction per batch, a savepoint per operation, one commit. Reads go through a pool of
autocommit connections (psycopg_pool). Statements are written once, in SQLite's spelling, and
rewritten by `dialect.to_postgres`.

The log's order is the commit order, across processes. Each batch first takes a
transaction-level advisory lock (`pg_advisory_xact_lock(LOG_LOCK)`), then, in a new statement
(READ COMMITTED takes a fresh snapshot per statement, so it sees every earlier holder's commit),
reads the counter row `log_seq`; events get the following seqs and the counter is written back
before the commit, which releases the lock. A second writer, in this process or another, waits
for the lock, so a seq is never committed after a larger one: a reader resuming after seq N
never misses a smaller seq that commits later. Seqs come from the database, never from this
process's memory, so several gateways can write to one database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg_pool import AsyncConnectionPool

from . import dialect
from .db import Database, WriteTx, _Op
from .migrate import apply_migrations

log = logging.getLogger("spacechat.store")

# The advisory lock key that orders the log: any 64-bit number no other user of the database
# takes; this one spells "spcchat1" in ASCII.
LOG_LOCK = 0x7370636368617431
# Held while migrating, so gateways starting together apply each migration once ("spmigr11" in ASCII).
MIGRATE_LOCK = 0x73706D6967723131


class Row:
    """A result row that answers by position and by column name, like sqlite3.Row, so the store's
    modules read both databases' rows the same way."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            # Postgres folds unquoted names to lower case; sqlite3.Row matches names in any case.
            position = self._index.get(key)
            return self._values[self._index[key.lower()] if position is None else position]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return tuple(self._values) == (tuple(other._values) if isinstance(other, Row) else other)

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        return f"Row({dict(zip(self.keys(), self._values, strict=True))!r})"

    def keys(self) -> list[str]:
        return list(self._index)


def _rows(cursor: Any) -> Any:
    description = cursor.description or []
    index: dict[str, int] = {}
    for position, column in enumerate(description):
        index.setdefault(column.name, position)  # the first of two same-named columns, as sqlite3.Row
    return lambda values: Row(values, index)


class _BoolAsInteger(Dumper):
    """SQLite has no booleans: the schema keeps flags as integers, so True is sent as 1."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class _BytesAsText(Dumper):
    """The schema has no binary columns: bytes the store hands over are UTF-8 text it made once
    (an event's JSON envelope), stored in a TEXT column as SQLite stores them."""

    oid = psycopg.postgres.types["text"].oid

    def dump(self, obj: Any) -> bytes:
        return bytes(obj)


class _NumericAsNumber(Loader):
    """SUM and AVG of integers are NUMERIC in Postgres; the callers expect int or float, as SQLite gives."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


def _adapt(conn: Any) -> None:
    conn.adapters.register_dumper(bool, _BoolAsInteger)
    conn.adapters.register_dumper(bytes, _BytesAsText)
    conn.adapters.register_loader("numeric", _NumericAsNumber)


class PgConnection:
    """The writer's connection as `WriteTx` uses it: `execute` takes the store's SQLite spelling."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self.raw.execute(dialect.to_postgres(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> Any:
        cursor = self.raw.cursor()
        cursor.executemany(dialect.to_postgres(sql), rows)
        return cursor


def display_name(url: str) -> str:
    """The database's name without credentials: what health and logs may show."""
    parts = urlsplit(url)
    return parts.path.lstrip("/") or parts.hostname or "postgres"


class PostgresDatabase(Database):
    """Owns a Postgres database: migrations, the writer, the readers."""

    dialect = dialect.POSTGRES
    stages_on_loop = False  # its statements wait on the network: always the writer's thread

    def __init__(self, url: str, *, migrations: Path, read_connections: int = 4) -> None:
        super().__init__(Path(display_name(url)), migrations=migrations / "postgres", read_connections=read_connections)
        self.url = url
        self._pool: AsyncConnectionPool[Any] | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._open_writer)
        self._pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self._read_count,
            kwargs={"autocommit": True, "row_factory": _rows},
            configure=self._configure_reader,
            open=False,
        )
        await self._pool.open(wait=True)
        self._writer = asyncio.create_task(self._write_loop(), name="spacechat-writer")

    @staticmethod
    async def _configure_reader(conn: Any) -> None:
        _adapt(conn)

    def _connect(self) -> psycopg.Connection[Any]:
        raw = psycopg.connect(self.url, row_factory=_rows)
        _adapt(raw)
        return raw

    def _open_writer(self) -> Any:
        raw = self._connect()
        raw.autocommit = True  # migrations manage their own transactions
        conn = PgConnection(raw)
        try:
            raw.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
            self.applied_now = apply_migrations(conn, self._migrations, now=_now(), postgres=True)
        except BaseException:
            raw.close()  # the session's advisory lock goes with it
            raise
        raw.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
        raw.autocommit = False
        row: Any = raw.execute("SELECT last_seq FROM log_seq").fetchone()
        self._seq = int(row[0])
        raw.rollback()
        return conn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
        if self._pool is not None:
            await self._pool.close()
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close_writer)
        self._executor.shutdown(wait=True)

    def _close_writer(self) -> None:
        self._conn.raw.close()
        self._conn = None

    def _run_batch(self, batch: list[_Op]) -> None:
        conn = self._conn
        if conn.raw.broken:
            # The server restarted or the network dropped: the batch that saw it failed (its
            # callers got the error); this one gets a new connection.
            conn.raw.close()
            conn.raw = self._connect()
        raw = conn.raw
        audit_head: tuple[int, str] | None = None
        seq_at_start = self._seq
        try:
            # Outside any savepoint: a lock taken inside one would be released by its rollback.
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (LOG_LOCK,))
            self._seq = seq_at_start = int(raw.execute("SELECT last_seq FROM log_seq").fetchone()[0])
            for op in batch:
                seq_before = self._seq
                # Each operation in a savepoint of its own, its events inserted inside it (one
                # executemany): a Postgres savepoint is cheap next to the round trips.
                rows: list[tuple[Any, ...]] = []
                tx = WriteTx(self, conn, rows)
                raw.execute("SAVEPOINT op")
                try:
                    op.result = op.fn(tx)
                    if rows:
                        tx.flush()
                except Exception as exc:
                    raw.execute("ROLLBACK TO SAVEPOINT op")
                    raw.execute("RELEASE SAVEPOINT op")
                    self._seq = seq_before
                    op.error = exc
                    continue
                raw.execute("RELEASE SAVEPOINT op")
                op.events = tx.events
                audit_head = tx.audit_head or audit_head
            if self._seq != seq_at_start:
                raw.execute("UPDATE log_seq SET last_seq = %s", (self._seq,))
            raw.commit()
        except BaseException:
            self._seq = seq_at_start
            if not raw.closed:
                raw.rollback()
            raise
        if audit_head is not None and self.on_audit is not None:
            try:
                self.on_audit(*audit_head)
            except Exception:  # the rows are committed; a missed checkpoint is caught up at start
                log.exception("anchoring the audit log failed")

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        assert self._pool is not None, "the database is not open"
        async with self._pool.connection() as conn:
            cursor = await conn.execute(dialect.to_postgres(sql), params)
            return list(await cursor.fetchall())


def _now() -> str:
    from ..events import now_rfc3339

    return now_rfc3339()
