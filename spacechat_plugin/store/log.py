"""Reading and pruning the append-only event log.

Events are appended only through `WriteTx.emit` (db.py). Retention deletes the oldest events and
records the highest seq it deleted (`pruned_through`): a client that asks to resume from before
that point has missed events that no longer exist and is told to `reset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .db import Database, WriteTx

PAGE = 1000


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    seq: int
    event_type: str
    org_id: str | None
    channel_id: str | None
    thread_id: str | None
    body: bytes


async def read_after(db: Database, seq: int, limit: int = PAGE) -> list[LoggedEvent]:
    rows = await db.fetchall(
        "SELECT seq, event_type, org_id, channel_id, thread_id, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
        (seq, limit),
    )
    return [
        LoggedEvent(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5] if isinstance(row[5], bytes) else row[5].encode(),
        )
        for row in rows
    ]


async def pruned_through(db: Database) -> int:
    value = await db.scalar("SELECT value FROM meta WHERE key = 'events_pruned_through'")
    return int(value) if value is not None else 0


def prune(tx: WriteTx, retention_days: float) -> int:
    """Delete events older than the retention; return how many."""
    cutoff = (datetime.now(UTC) - timedelta(days=retention_days)).strftime("%Y-%m-%dT%H:%M:%S")
    newest_old = tx.one("SELECT MAX(seq) FROM events WHERE ts < ?", (cutoff,))[0]
    if newest_old is None:
        return 0
    deleted = tx.execute("DELETE FROM events WHERE seq <= ?", (newest_old,)).rowcount
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('events_pruned_through', ?)"
        " ON CONFLICT(key) DO UPDATE SET value ="
        " CAST(MAX(CAST(meta.value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
        (str(newest_old),),
    )
    return int(deleted)


async def count(db: Database) -> Any:
    return await db.scalar("SELECT COUNT(*) FROM events")


async def thread_events(db: Database, thread_id: str, types: tuple[str, ...]) -> list[bytes]:
    """The logged envelopes of one thread's events of these types, in order."""
    marks = ", ".join("?" for _ in types)
    rows = await db.fetchall(
        f"SELECT body FROM events WHERE thread_id = ? AND event_type IN ({marks}) ORDER BY seq", (thread_id, *types)
    )
    return [row[0] if isinstance(row[0], bytes) else row[0].encode() for row in rows]


async def head(db: Database) -> int:
    """The newest seq in the log (0 when it is empty)."""
    return int(await db.scalar("SELECT COALESCE(MAX(seq), 0) FROM events") or 0)
