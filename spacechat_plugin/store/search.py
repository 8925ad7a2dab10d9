"""Search over messages: the SQL (FTS5 in migrations/0008_chat.sql, kept by triggers in the same
transaction as each message; on Postgres, text search over an expression index,
migrations/postgres/0008_chat.sql and store/textsearch.py: the `_pg` functions beside their
SQLite twins).

Every query is built by `_where` from one `Filters`, whose `channel_ids` is the caller's tenancy
scope (search/scope.py): the organisation and the channels it may read are part of the WHERE
clause, so another organisation's or an unreadable channel's messages are never ranked, counted
or returned. A ranker that finds candidates elsewhere (vectors) passes them through
`filter_candidates`, the same clause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import textsearch
from .db import Database, dumps
from .dialect import POSTGRES

# Around highlighted words in snippet(): private-use characters, never markup.
HIT_START, HIT_END = "\ue000", "\ue001"
SNIPPET_TOKENS = 18
RELEVANCE_WINDOW = 5000
HAS = ("attachment", "card", "image", "link", "reaction")
_HAS_SQL = {
    "attachment": "m.attachments != '[]'",
    "card": "m.blocks IS NOT NULL",
    "image": "EXISTS (SELECT 1 FROM json_each(m.attachments) a"
    " WHERE json_extract(a.value, '$.content_type') LIKE 'image/%')",
    "link": "(m.text LIKE '%http://%' OR m.text LIKE '%https://%')",
    "reaction": "m.reactions != '[]'",
}
# Postgres: the attachments' JSON read with jsonb operators (no json_each over a column there).
_HAS_SQL_PG = _HAS_SQL | {
    "image": "EXISTS (SELECT 1 FROM jsonb_array_elements(CAST(m.attachments AS jsonb)) a"
    " WHERE a.value ->> 'content_type' LIKE 'image/%')",
}
# The text search condition: the indexed expression and the index's own condition, so the
# planner can use messages_search.
_MATCHES_PG = (
    f"(m.state = 'completed' AND m.deleted_at IS NULL AND m.text <> ''"
    f" AND {textsearch.document('m.text')} @@ to_tsquery('{textsearch.CONFIG}', :{{name}}))"
)
_UNREAD_SQL = (
    "(m.author_id IS NOT :user AND m.created_at > :joined AND m.seq > COALESCE((SELECT r.last_read_seq"
    " FROM thread_reads r WHERE r.user_id = :user AND r.thread_id = m.thread_id), 0))"
)
_MENTIONED_SQL = "EXISTS (SELECT 1 FROM message_mentions mm WHERE mm.message_id = m.id AND mm.user_id = :user)"


@dataclass(frozen=True)
class Filters:
    """What a search may return: the tenancy scope (`org_id`, `channel_ids`: never empty of
    meaning, an empty set matches nothing) narrowed by the query's operators."""

    org_id: str
    user_id: str
    channel_ids: frozenset[str]
    exclude_channels: frozenset[str] = frozenset()
    authors: frozenset[str] = frozenset()
    exclude_authors: frozenset[str] = frozenset()
    has: tuple[str, ...] = ()
    has_not: tuple[str, ...] = ()
    unread: bool | None = None
    mentioned: bool | None = None
    after: str | None = None  # created_at >= after
    before: str | None = None  # created_at < before
    match: str | None = None  # an FTS5 expression the text must match
    exclude_match: str | None = None  # an FTS5 expression the text must not match (no positive terms)


def _where(
    filters: Filters, joined: str, *, by_seq: bool = False, postgres: bool = False
) -> tuple[list[str], dict[str, Any]]:
    """The WHERE terms of `filters`. With `by_seq` (the message is found by its seq, from the FTS
    index) the channel test must not pick an index: that is one probe per readable channel for
    every match (`+` keeps it a plain test)."""
    has_sql = _HAS_SQL_PG if postgres else _HAS_SQL
    where = [
        "m.org_id = :org",
        ("+" if by_seq else "") + "m.channel_id IN (SELECT value FROM json_each(:channels))",
        "m.state = 'completed'",
        "m.deleted_at IS NULL",
    ]
    params: dict[str, Any] = {
        "org": filters.org_id,
        "user": filters.user_id,
        "joined": joined,
        "channels": dumps(sorted(filters.channel_ids)),
    }
    if filters.exclude_channels:
        where.append("m.channel_id NOT IN (SELECT value FROM json_each(:not_channels))")
        params["not_channels"] = dumps(sorted(filters.exclude_channels))
    if filters.authors:
        where.append("m.author_id IN (SELECT value FROM json_each(:authors))")
        params["authors"] = dumps(sorted(filters.authors))
    if filters.exclude_authors:
        where.append("m.author_id NOT IN (SELECT value FROM json_each(:not_authors))")
        params["not_authors"] = dumps(sorted(filters.exclude_authors))
    where.extend(has_sql[name] for name in filters.has)
    where.extend(f"NOT {has_sql[name]}" for name in filters.has_not)
    if filters.unread is not None:
        where.append(_UNREAD_SQL if filters.unread else f"NOT {_UNREAD_SQL}")
    if filters.mentioned is not None:
        where.append(_MENTIONED_SQL if filters.mentioned else f"NOT {_MENTIONED_SQL}")
    if filters.after is not None:
        where.append("m.created_at >= :after")
        params["after"] = filters.after
    if filters.before is not None:
        where.append("m.created_at < :before")
        params["before"] = filters.before
    if filters.exclude_match is not None and postgres:
        where.append("NOT " + _MATCHES_PG.format(name="exclude"))
        params["exclude"] = textsearch.tsquery(filters.exclude_match)
    elif filters.exclude_match is not None:
        where.append("m.seq NOT IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :exclude)")
        params["exclude"] = filters.exclude_match
    return where, params


async def _joined(db: Database, user_id: str) -> str:
    return str(await db.scalar("SELECT created_at FROM users WHERE id = ?", (user_id,)) or "")


async def fulltext(db: Database, filters: Filters, *, sort: str, limit: int, offset: int) -> list[dict[str, Any]]:
    """Messages matching `filters`, best first (`relevance`: BM25, then newest) or newest first.
    Each row is the message's with `score` (lower is better; 0 without words) and `snippet`
    (the matching words between HIT_START and HIT_END; None without words)."""
    if not filters.channel_ids:
        return []
    if db.dialect == POSTGRES:
        return await _fulltext_pg(db, filters, sort=sort, limit=limit, offset=offset)
    where, params = _where(filters, await _joined(db, filters.user_id), by_seq=filters.match is not None)
    params.update(limit=limit, offset=offset)
    if filters.match is None:
        sql = (
            "SELECT m.*, 0.0 AS score, NULL AS snippet FROM messages m WHERE "
            + " AND ".join(where)
            + " ORDER BY m.seq DESC LIMIT :limit OFFSET :offset"
        )
        return [dict(row) for row in await db.fetchall(sql, params)]
    params["match"] = filters.match
    if sort == "relevance":
        rows = await _by_relevance(db, filters.match, where, params, limit=limit, offset=offset)
    else:
        sql = (
            "SELECT m.*, bm25(messages_fts) AS score"
            # CROSS JOIN keeps the FTS index the outer loop (SQLite does not reorder it): the
            # planner would otherwise walk the channels' messages and run the MATCH for each.
            " FROM messages_fts CROSS JOIN messages m ON m.seq = messages_fts.rowid"
            " WHERE messages_fts MATCH :match AND "
            + " AND ".join(where)
            + " ORDER BY messages_fts.rowid DESC LIMIT :limit OFFSET :offset"
        )
        rows = [dict(row) for row in await db.fetchall(sql, params)]
    # Snippets only for the page, not for every match ranked.
    snippets = await db.fetchall(
        f"SELECT rowid, snippet(messages_fts, 0, '{HIT_START}', '{HIT_END}', '…', {SNIPPET_TOKENS})"
        " FROM messages_fts WHERE messages_fts MATCH ? AND rowid IN (SELECT value FROM json_each(?))",
        (filters.match, dumps([row["seq"] for row in rows])),
    )
    by_seq = {row[0]: row[1] for row in snippets}
    for row in rows:
        row["snippet"] = by_seq.get(row["seq"])
    return rows


# ts_headline drops what its parser takes for HTML tags; a message's `<` and `>` are text, so they
# go through it as private-use characters between spaces (their own tokens) and come back after.
_ANGLES_PG = (("<", "chr(57346)"), (">", "chr(57347)"))


def _headline_pg(query: str) -> str:
    text = "m.text"
    for char, stand_in in _ANGLES_PG:
        text = f"replace({text}, '{char}', ' ' || {stand_in} || ' ')"
    options = f"StartSel={HIT_START}, StopSel={HIT_END}, MaxWords={SNIPPET_TOKENS}, MinWords=15"
    headline = f"ts_headline('{textsearch.CONFIG}', {text}, {query}, '{options}')"
    for char, stand_in in _ANGLES_PG:
        headline = f"replace({headline}, ' ' || {stand_in} || ' ', '{char}')"
    return headline


async def _fulltext_pg(db: Database, filters: Filters, *, sort: str, limit: int, offset: int) -> list[dict[str, Any]]:
    """`fulltext` on Postgres: one query. The score is minus ts_rank, so lower is better as
    with bm25; the snippet is ts_headline's, with the same markers around the words."""
    where, params = _where(filters, await _joined(db, filters.user_id), postgres=True)
    params.update(limit=limit, offset=offset)
    if filters.match is None:
        sql = "SELECT m.*, 0.0 AS score, NULL AS snippet FROM messages m WHERE " + " AND ".join(where)
        sql += " ORDER BY m.seq DESC LIMIT :limit OFFSET :offset"
        return [dict(row) for row in await db.fetchall(sql, params)]
    params["match"] = textsearch.tsquery(filters.match)
    query = f"to_tsquery('{textsearch.CONFIG}', :match)"
    order = "score, m.seq DESC" if sort == "relevance" else "m.seq DESC"
    sql = (
        f"SELECT m.*, -ts_rank({textsearch.document('m.text')}, {query}) AS score,"
        f" {_headline_pg(query)} AS snippet FROM messages m WHERE "
        + " AND ".join([_MATCHES_PG.format(name="match"), *where])
        + f" ORDER BY {order} LIMIT :limit OFFSET :offset"
    )
    return [dict(row) for row in await db.fetchall(sql, params)]


async def _by_relevance(
    db: Database, match: str, where: list[str], params: dict[str, Any], *, limit: int, offset: int
) -> list[dict[str, Any]]:
    """BM25 order. FTS5 ranks inside its index (under a µs a match); the messages are then
    taken in that order and only those `where` allows are kept, until the page is full: the same
    answer as filtering first and ranking after, since a message's score does not depend on the
    others. BM25 still costs for every match of a word in a fifth of a million messages, so the
    newest RELEVANCE_WINDOW matches are ranked (every match of a rarer word); older ones are
    reached newest-first or with before:/after:."""
    floor = await db.scalar(
        "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid DESC LIMIT 1 OFFSET ?",
        (match, RELEVANCE_WINDOW - 1),
    )
    need = offset + limit
    take = max(200, need * 4)
    while True:
        ranked = await db.fetchall(
            "SELECT rowid, rank FROM messages_fts WHERE messages_fts MATCH ? AND rowid >= ?"
            " ORDER BY rank, rowid DESC LIMIT ?",
            (match, floor or 0, take),
        )
        scores = {row[0]: row[1] for row in ranked}
        allowed = await db.fetchall(
            "SELECT m.* FROM messages m WHERE m.seq IN (SELECT value FROM json_each(:seqs)) AND " + " AND ".join(where),
            {**params, "seqs": dumps(list(scores))},
        )
        if len(allowed) >= need or len(ranked) < take or take >= RELEVANCE_WINDOW:
            break
        # Few pass the filters (one channel, a date range): take as many as that rate needs.
        rate = max(len(allowed) / len(ranked), 0.002)
        take = min(max(take * 4, int(need / rate * 1.5)), RELEVANCE_WINDOW)
    rows = sorted(
        ({**dict(row), "score": scores[row["seq"]]} for row in allowed), key=lambda r: (r["score"], -r["seq"])
    )
    return rows[offset:need]


async def filter_candidates(db: Database, filters: Filters, message_ids: Sequence[str]) -> list[Any]:
    """Of `message_ids` (candidates a ranker found elsewhere, e.g. by vectors), the rows that
    `filters` allow, in no particular order: the same tenancy and operator clause as fulltext."""
    if not message_ids or not filters.channel_ids:
        return []
    postgres = db.dialect == POSTGRES
    where, params = _where(filters, await _joined(db, filters.user_id), postgres=postgres)
    params["ids"] = dumps(list(message_ids))
    if filters.match is not None and postgres:
        where.append(_MATCHES_PG.format(name="match"))
        params["match"] = textsearch.tsquery(filters.match)
    elif filters.match is not None:
        where.append("m.seq IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :match)")
        params["match"] = filters.match
    sql = "SELECT m.* FROM messages m WHERE m.id IN (SELECT value FROM json_each(:ids)) AND " + " AND ".join(where)
    return await db.fetchall(sql, params)


async def threads_and_channels(db: Database, thread_ids: Sequence[str]) -> dict[str, Any]:
    """The threads (with their channel's name, kind and privacy) of a page of hits, by id."""
    rows = await db.fetchall(
        "SELECT t.*, c.name AS channel_name, c.kind AS channel_kind, c.private AS channel_private"
        " FROM threads t JOIN channels c ON c.id = t.channel_id WHERE t.id IN (SELECT value FROM json_each(?))",
        (dumps(list(set(thread_ids))),),
    )
    return {row["id"]: row for row in rows}


async def users_matching(db: Database, org_id: str, value: str) -> list[str]:
    """The ids of the organisation's users a `from:` value names: a handle, an email, an id or a
    whole name (case-insensitive)."""
    rows = await db.fetchall(
        "SELECT id FROM users WHERE org_id = ? AND (handle = lower(?) OR email = lower(?) OR id = ?"
        " OR lower(name) = lower(?))",
        (org_id, value, value, value, value),
    )
    return [row[0] for row in rows]
