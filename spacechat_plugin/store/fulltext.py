"""Keyword search with FTS5 (the full-text side of hybrid search, issue 12), filtered by
organisation and readable channels inside the query, before ranking."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .db import Database

_WORD = re.compile(r"\w+", re.UNICODE)


def match_expression(query: str) -> str | None:
    """The query as an FTS5 expression: each word quoted (no operator injection), any of them
    matching, ranked by bm25. None when the query has no word."""
    words = _WORD.findall(query.lower())[:32]
    return " OR ".join(f'"{word}"' for word in words) if words else None


async def messages(
    db: Database, query: str, *, org_id: str, channel_ids: Sequence[str], limit: int
) -> list[tuple[str, float]]:
    expression = match_expression(query)
    if expression is None or not channel_ids:
        return []
    marks = ",".join("?" * len(channel_ids))
    rows = await db.fetchall(
        "SELECT m.id, bm25(messages_fts) AS score FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid"
        f" WHERE messages_fts MATCH ? AND m.org_id = ? AND m.channel_id IN ({marks}) AND m.state = 'completed'"
        " ORDER BY score LIMIT ?",
        (expression, org_id, *channel_ids, limit),
    )
    return [(row[0], float(row[1])) for row in rows]


async def memories(
    db: Database, query: str, *, org_id: str, channel_ids: Sequence[str], limit: int
) -> list[tuple[str, float]]:
    expression = match_expression(query)
    if expression is None:
        return []
    marks = ",".join("?" * len(channel_ids)) or "NULL"
    rows = await db.fetchall(
        "SELECT m.id, bm25(memories_fts) AS score FROM memories_fts JOIN memories m ON m.rowid = memories_fts.rowid"
        f" WHERE memories_fts MATCH ? AND m.org_id = ? AND m.status = 'valid'"
        f" AND (m.channel_id IS NULL OR m.channel_id IN ({marks})) ORDER BY score LIMIT ?",
        (expression, org_id, *channel_ids, limit),
    )
    return [(row[0], float(row[1])) for row in rows]
