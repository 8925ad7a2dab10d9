"""Vectors in sqlite-vec (issue 12): one `vec0` table of embeddings of messages, memories and
pending candidates, partitioned by organisation, with the kind and channel as metadata columns
so the nearest-neighbour scan itself skips other tenants and unreadable channels (filtering
before ranking, never after: a private channel's text can never push a readable hit out of
the top k, nor appear). `vector_refs` maps each vector to what it embeds.

The table is created at start-up when the extension loads (`ensure`); without it, every function
here reports `available() == False` and semantic features say so.

On Postgres (issue 17) pgvector is not packaged here: `vec_items` is a plain table
(migrations/postgres/0012_memory.sql) with a REAL[] per item, the channel's id as text, and an
exact search that computes the cosine distance to every vector the filters leave (the `_pg`
twins below).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from ..events import now_rfc3339
from .db import Database, WriteTx
from .dialect import POSTGRES
from .shapes import message_json

TABLE = "vec_items"


def ensure(tx: WriteTx, dimensions: int) -> bool:
    """Create the vec0 table if sqlite-vec is loaded; False when it is not."""
    if tx.dialect == POSTGRES:
        return True  # a migration made the table; arrays need no extension
    try:
        tx.one("SELECT vec_version()")
    except Exception:
        return False
    # Kind and channel are integers (the channel's rowid, 0 for none): sqlite-vec filters integer
    # metadata with IN at scan speed, where a text IN over 48 channel ids made a 5,000-row scan
    # 30 times slower (bench/memory.py).
    tx.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING vec0("
        " item_id INTEGER PRIMARY KEY,"
        " org_id TEXT PARTITION KEY,"
        " kind INTEGER,"
        " channel INTEGER,"
        f" embedding FLOAT[{int(dimensions)}] distance_metric=cosine)"
    )
    return True


KIND_CODES = {"message": 1, "memory": 2, "candidate": 3}


def _channel_no(tx: WriteTx, channel_id: str) -> int:
    if not channel_id:
        return 0
    row = tx.one("SELECT rowid FROM channels WHERE id = ?", (channel_id,))
    return int(row[0]) if row is not None else -1


def pack(vector: Sequence[float]) -> bytes:
    return struct.pack(f"{len(vector)}f", *vector)


def unpack(vector: bytes) -> list[float]:
    return list(struct.unpack(f"{len(vector) // 4}f", vector))


def upsert(tx: WriteTx, *, kind: str, ref_id: str, org_id: str, channel_id: str | None, vector: bytes) -> None:
    """Store (or replace) the vector of one thing."""
    channel = channel_id or ""
    row = tx.one("SELECT item_id FROM vector_refs WHERE ref_id = ?", (ref_id,))
    if row is not None:
        tx.execute(f"DELETE FROM {TABLE} WHERE item_id = ?", (row["item_id"],))
        item_id = row["item_id"]
        tx.execute("UPDATE vector_refs SET channel_id = ? WHERE item_id = ?", (channel, item_id))
    else:
        item_id = tx.one(
            "INSERT INTO vector_refs (kind, ref_id, org_id, channel_id, created_at) VALUES (?, ?, ?, ?, ?)"
            " RETURNING item_id",
            (kind, ref_id, org_id, channel, now_rfc3339()),
        )[0]
    if tx.dialect == POSTGRES:
        tx.execute(
            f"INSERT INTO {TABLE} (item_id, org_id, kind, channel_id, embedding) VALUES (?, ?, ?, ?, ?)",
            (item_id, org_id, KIND_CODES[kind], channel, unpack(vector)),
        )
        return
    tx.execute(
        f"INSERT INTO {TABLE} (item_id, org_id, kind, channel, embedding) VALUES (?, ?, ?, ?, ?)",
        (item_id, org_id, KIND_CODES[kind], _channel_no(tx, channel), vector),
    )


def upsert_message(tx: WriteTx, *, message_id: str, org_id: str, channel_id: str, vector: bytes) -> None:
    """A message's vector, unless the message is gone (purged while it was being embedded)."""
    if tx.one("SELECT 1 FROM messages WHERE id = ?", (message_id,)) is not None:
        upsert(tx, kind="message", ref_id=message_id, org_id=org_id, channel_id=channel_id, vector=vector)


def remove(tx: WriteTx, ref_ids: Sequence[str]) -> int:
    """Drop the vectors of these things (a purge, a deletion, a decided candidate)."""
    removed = 0
    for start in range(0, len(ref_ids), 500):
        chunk = list(ref_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = tx.all(f"SELECT item_id FROM vector_refs WHERE ref_id IN ({marks})", chunk)
        for row in rows:
            tx.execute(f"DELETE FROM {TABLE} WHERE item_id = ?", (row["item_id"],))
        tx.execute(f"DELETE FROM vector_refs WHERE ref_id IN ({marks})", chunk)
        removed += len(rows)
    return removed


def table_exists(tx: WriteTx) -> bool:
    if tx.dialect == POSTGRES:
        return True
    return tx.one("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE,)) is not None


def vector_of(tx: WriteTx, ref_id: str) -> bytes | None:
    """The stored vector of one thing, if it has one."""
    row = tx.one("SELECT item_id FROM vector_refs WHERE ref_id = ?", (ref_id,))
    if row is None or not table_exists(tx):
        return None
    stored = tx.one(f"SELECT embedding FROM {TABLE} WHERE item_id = ?", (row["item_id"],))
    if stored is None:
        return None
    return pack(stored[0]) if tx.dialect == POSTGRES else bytes(stored[0])


async def nearest(
    db: Database,
    vector: bytes,
    *,
    org_id: str,
    kinds: Sequence[str],
    channel_ids: Sequence[str],
    k: int,
) -> list[tuple[str, str, float]]:
    """The k nearest things of `kinds` in `org_id` whose channel is one of `channel_ids` ('' is
    "no channel"), as (kind, ref id, cosine distance), nearest first."""
    if not channel_ids or not kinds:
        return []
    if db.dialect == POSTGRES:
        return await _nearest_pg(db, vector, org_id=org_id, kinds=kinds, channel_ids=channel_ids, k=k)
    numbers = await channel_numbers(db, channel_ids)
    channel_marks = ",".join("?" * len(numbers))
    kind_marks = ",".join("?" * len(kinds))
    rows = await db.fetchall(
        f"SELECT r.kind, r.ref_id, v.distance FROM (SELECT item_id, distance FROM {TABLE}"
        f" WHERE embedding MATCH ? AND k = ? AND org_id = ? AND kind IN ({kind_marks})"
        f" AND channel IN ({channel_marks})) v JOIN vector_refs r ON r.item_id = v.item_id"
        " ORDER BY v.distance",
        (vector, k, org_id, *(KIND_CODES[kind] for kind in kinds), *numbers),
    )
    return [(row[0], row[1], float(row[2])) for row in rows]


async def _nearest_pg(
    db: Database, vector: bytes, *, org_id: str, kinds: Sequence[str], channel_ids: Sequence[str], k: int
) -> list[tuple[str, str, float]]:
    """Exact search: the filters first (organisation, kinds, channels), then the distance to each
    vector they leave (cosine_distance, migrations/postgres/0012_memory.sql)."""
    kind_marks = ",".join("?" * len(kinds))
    channel_marks = ",".join("?" * len(channel_ids))
    rows = await db.fetchall(
        "SELECT r.kind, r.ref_id, v.distance FROM (SELECT item_id, cosine_distance(embedding, CAST(? AS REAL[]))"
        f" AS distance FROM {TABLE} WHERE org_id = ? AND kind IN ({kind_marks}) AND channel_id IN ({channel_marks})"
        " ORDER BY distance LIMIT ?) v JOIN vector_refs r ON r.item_id = v.item_id ORDER BY v.distance",
        (unpack(vector), org_id, *(KIND_CODES[kind] for kind in kinds), *channel_ids, k),
    )
    return [(row[0], row[1], float(row[2])) for row in rows]


async def channel_numbers(db: Database, channel_ids: Sequence[str]) -> list[int]:
    """The vec0 channel numbers of these channels ('' is 0, no channel)."""
    ids = [c for c in channel_ids if c]
    numbers = [0] if len(ids) < len(channel_ids) else []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = await db.fetchall(f"SELECT rowid FROM channels WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        numbers.extend(int(row[0]) for row in rows)
    return numbers or [-1]


async def indexed_ids(db: Database, kind: str, ref_ids: Sequence[str]) -> set[str]:
    if not ref_ids:
        return set()
    marks = ",".join("?" * len(ref_ids))
    rows = await db.fetchall(f"SELECT ref_id FROM vector_refs WHERE kind = ? AND ref_id IN ({marks})", (kind, *ref_ids))
    return {row[0] for row in rows}


async def unindexed_messages(db: Database, limit: int) -> list[Any]:
    """Completed messages with text that have no vector yet (the indexer's catch-up)."""
    return await db.fetchall(
        "SELECT m.id, m.org_id, m.channel_id, m.text, m.state FROM messages m"
        " WHERE m.state = 'completed' AND m.text != ''"
        " AND NOT EXISTS (SELECT 1 FROM vector_refs r WHERE r.ref_id = m.id) ORDER BY m.seq LIMIT ?",
        (limit,),
    )


async def messages_by_ids(db: Database, ids: Sequence[str]) -> list[Any]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return await db.fetchall(
        f"SELECT id, org_id, channel_id, text, state FROM messages WHERE id IN ({marks})", list(ids)
    )


async def messages_json(db: Database, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Messages by id, as the API shows them (search hits, fetched at once)."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = await db.fetchall(f"SELECT * FROM messages WHERE id IN ({marks})", list(ids))
    return {row["id"]: message_json(row) for row in rows}


async def count(db: Database) -> int:
    return int(await db.scalar("SELECT COUNT(*) FROM vector_refs") or 0)
