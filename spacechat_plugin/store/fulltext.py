"""Keyword search with FTS5 (the full-text side of hybrid search, issue 12), filtered by
organisation and readable channels inside the query, before ranking. On Postgres, text search
(store/textsearch.py) with minus ts_rank as the score, so lower is better in both."""

from __future__ import annotations

import re
from collections.abc import Sequence

from . import textsearch
from .db import Database
from .dialect import POSTGRES

_WORD = re.compile(r"\w+", re.UNICODE)
_DOC_PG = textsearch.document("m.text")
_QUERY_PG = f"to_tsquery('{textsearch.CONFIG}', ?)"


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
    if db.dialect == POSTGRES:
        rows = await db.fetchall(
            f"SELECT m.id, -ts_rank({_DOC_PG}, q) AS score FROM messages m, {_QUERY_PG} q"
            f" WHERE {_DOC_PG} @@ q AND m.text <> '' AND m.org_id = ? AND m.channel_id IN ({marks})"
            " AND m.state = 'completed' AND m.deleted_at IS NULL ORDER BY score LIMIT ?",
            (textsearch.tsquery(expression), org_id, *channel_ids, limit),
        )
        return [(row[0], float(row[1])) for row in rows]
    rows = await db.fetchall(
        "SELECT m.id, bm25(messages_fts) AS score FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid"
        f" WHERE messages_fts MATCH ? AND m.org_id = ? AND m.channel_id IN ({marks})"
        " AND m.state = 'completed' AND m.deleted_at IS NULL"
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
    if db.dialect == POSTGRES:
        document = textsearch.document("m.content")
        rows = await db.fetchall(
            f"SELECT m.id, -ts_rank({document}, q) AS score FROM memories m, {_QUERY_PG} q"
            f" WHERE {document} @@ q AND m.org_id = ? AND m.status = 'valid'"
            f" AND (m.channel_id IS NULL OR m.channel_id IN ({marks})) ORDER BY score LIMIT ?",
            (textsearch.tsquery(expression), org_id, *channel_ids, limit),
        )
        return [(row[0], float(row[1])) for row in rows]
    rows = await db.fetchall(
        "SELECT m.id, bm25(memories_fts) AS score FROM memories_fts JOIN memories m ON m.rowid = memories_fts.rowid"
        f" WHERE memories_fts MATCH ? AND m.org_id = ? AND m.status = 'valid'"
        f" AND (m.channel_id IS NULL OR m.channel_id IN ({marks})) ORDER BY score LIMIT ?",
        (expression, org_id, *channel_ids, limit),
    )
    return [(row[0], float(row[1])) for row in rows]
