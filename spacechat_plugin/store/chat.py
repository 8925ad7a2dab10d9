"""Edits, tombstones, reactions, mentions, who follows a thread, per-thread read markers and the
inbox: SQL and the JSON shapes the API returns (issue 13).

Every write runs inside the writer's transaction with the message it concerns, so the search
index (kept by triggers, migrations/0008_chat.sql), the events and these rows never disagree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from ..events import (
    Actor,
    Event,
    MessageDeleted,
    MessageUpdated,
    ReactionAdded,
    ReactionRemoved,
    ThreadRead,
    now_rfc3339,
)
from .db import Database, WriteTx, dumps
from .shapes import envelope_of, message_in, plain_preview, title_of

MAX_REPLIERS = 5
UNREAD_CAP = 1000
MAX_REACTIONS = 50  # distinct emoji on one message

# `@handle`: what the composer inserts for a person or an agent (agents' handles are their ids).
MENTION = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9_-]{0,39})\b")
_HANDLE_CHARS = re.compile(r"[^a-z0-9]+")


def mention_names(text: str) -> list[str]:
    """The `@handles` in a text, in order, each once."""
    seen: list[str] = []
    for name in MENTION.findall(text):
        if name not in seen:
            seen.append(name)
    return seen


# --- handles -------------------------------------------------------------------------------


def slug(name: str) -> str:
    """A handle made of a name: lower-case letters and digits joined by '-' (at most 32), accents
    dropped (`Émile Zola` is `emile-zola`); a name with no such letter gives `user`."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = _HANDLE_CHARS.sub("-", plain.lower()).strip("-")[:32].strip("-")
    return text or "user"


def unique_handle(tx: WriteTx, org_id: str, wanted: str) -> str:
    """`wanted`, or `wanted-2`, `-3`... whichever is free in the organisation."""
    taken = {
        row[0]
        for row in tx.all(
            "SELECT handle FROM users WHERE org_id = ? AND (handle = ? OR handle LIKE ?)",
            (org_id, wanted, wanted + "-%"),
        )
    }
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


def assign_missing_handles(tx: WriteTx) -> int:
    """Give every user without a handle one (users created before handles existed)."""
    rows = tx.all("SELECT id, org_id, kind, name FROM users WHERE handle IS NULL ORDER BY created_at")
    for row in rows:
        host_agent = row["kind"] == "agent" and not row["id"].startswith("usr_")
        agent_id = row["id"] if host_agent and MENTION.fullmatch("@" + row["id"]) else None
        handle = unique_handle(tx, row["org_id"], agent_id or slug(row["name"]))
        tx.execute("UPDATE users SET handle = ? WHERE id = ?", (handle, row["id"]))
    return len(rows)


def resolve_handles(tx: WriteTx, org_id: str, handles: Sequence[str]) -> list[str]:
    """The ids of the active users of the organisation with these handles."""
    if not handles:
        return []
    marks = ",".join("?" * len(handles))
    rows = tx.all(
        f"SELECT id FROM users WHERE org_id = ? AND handle IN ({marks}) AND deactivated_at IS NULL",
        (org_id, *handles),
    )
    return [row[0] for row in rows]


# --- threads: the last reply, repliers and followers (called from post_message) ------------


def note_post(
    tx: WriteTx,
    *,
    thread_id: str,
    channel: dict[str, Any],
    message_id: str,
    author_id: str | None,
    now: str,
    new_thread: bool,
    mentioned: Sequence[str],
) -> None:
    """After a message is inserted: who follows its thread (the author; the people it mentions;
    everyone in a direct conversation) and whom it mentions."""
    if author_id is not None:
        follow(tx, author_id, thread_id, "started" if new_thread else "replied", now)
    for user_id in mentioned:
        tx.execute("INSERT OR IGNORE INTO message_mentions (message_id, user_id) VALUES (?, ?)", (message_id, user_id))
        follow(tx, user_id, thread_id, "mentioned", now)
    if new_thread and channel.get("kind") == "dm":
        for row in tx.all("SELECT user_id FROM channel_members WHERE channel_id = ?", (channel["id"],)):
            follow(tx, row[0], thread_id, "direct", now)


def follow(tx: WriteTx, user_id: str, thread_id: str, reason: str, now: str) -> None:
    assert reason in ("started", "replied", "mentioned", "direct")
    tx.execute(
        f"INSERT INTO thread_follows (user_id, thread_id, {reason}, created_at) VALUES (?, ?, 1, ?)"
        # Most replies come from people who already follow the thread: then nothing is written.
        f" ON CONFLICT (user_id, thread_id) DO UPDATE SET {reason} = 1 WHERE thread_follows.{reason} = 0",
        (user_id, thread_id, now),
    )


def refresh_preview(tx: WriteTx, message_id: str, thread_id: str, text: str) -> None:
    """A message's text changed (a reply finished streaming, an edit, a delete): the thread's
    preview follows when it is the thread's last message."""
    tx.execute(
        "UPDATE threads SET last_preview = ? WHERE id = ? AND last_message_id = ?",
        (plain_preview(text), thread_id, message_id),
    )


# --- edits and deletes ---------------------------------------------------------------------


def edit_message(tx: WriteTx, message: dict[str, Any], text: str, actor: Actor) -> dict[str, Any]:
    """Replace a message's text, keeping the earlier version; its mentions and the thread's
    title and preview follow. Emits message.updated (change `edited`)."""
    now = now_rfc3339()
    tx.execute(
        "INSERT INTO message_edits (message_id, text, created_at, replaced_at, replaced_by) VALUES (?, ?, ?, ?, ?)",
        (message["id"], message["text"], message["edited_at"] or message["created_at"], now, actor.id),
    )
    tx.execute(
        "UPDATE messages SET text = ?, edited_at = ?, updated_at = ? WHERE id = ?", (text, now, now, message["id"])
    )
    thread = tx.one("SELECT root_message_id FROM threads WHERE id = ?", (message["thread_id"],))
    if thread is not None and thread["root_message_id"] == message["id"]:
        tx.execute("UPDATE threads SET title = ? WHERE id = ?", (title_of(text), message["thread_id"]))
    refresh_preview(tx, message["id"], message["thread_id"], text)
    mentioned = resolve_handles(tx, message["org_id"], mention_names(text))
    for user_id in mentioned:
        tx.execute(
            "INSERT OR IGNORE INTO message_mentions (message_id, user_id) VALUES (?, ?)", (message["id"], user_id)
        )
        follow(tx, user_id, message["thread_id"], "mentioned", now)
    updated = message_in(tx, message["id"])
    tx.emit(Event(MessageUpdated(message=updated, change="edited"), **envelope_of(updated, actor)))
    return updated


def delete_message(tx: WriteTx, message: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """Leave a tombstone: the text, files, card, reactions and earlier versions go; the row and
    its place in the thread stay. Emits message.deleted."""
    now = now_rfc3339()
    tx.execute(
        "UPDATE messages SET text = '', attachments = '[]', blocks = NULL, card_state = NULL, reactions = '[]',"
        " deleted_at = ?, deleted_by = ?, updated_at = ? WHERE id = ?",
        (now, actor.id, now, message["id"]),
    )
    tx.execute("DELETE FROM message_edits WHERE message_id = ?", (message["id"],))
    tx.execute("DELETE FROM message_reactions WHERE message_id = ?", (message["id"],))
    tx.execute("DELETE FROM message_mentions WHERE message_id = ?", (message["id"],))
    thread = tx.one("SELECT root_message_id FROM threads WHERE id = ?", (message["thread_id"],))
    if thread is not None and thread["root_message_id"] == message["id"]:
        tx.execute("UPDATE threads SET title = '' WHERE id = ?", (message["thread_id"],))
    refresh_preview(tx, message["id"], message["thread_id"], "")
    tombstone = message_in(tx, message["id"])
    tx.emit(Event(MessageDeleted(message=tombstone), **envelope_of(tombstone, actor)))
    return tombstone


async def edit_history(db: Database, message_id: str) -> list[dict[str, Any]]:
    """The earlier versions of a message, oldest first."""
    rows = await db.fetchall(
        "SELECT text, created_at, replaced_at, replaced_by FROM message_edits WHERE message_id = ? ORDER BY id",
        (message_id,),
    )
    return [
        {
            "text": r["text"],
            "written_at": r["created_at"],
            "replaced_at": r["replaced_at"],
            "replaced_by": r["replaced_by"],
        }
        for r in rows
    ]


# --- reactions -----------------------------------------------------------------------------


class TooManyReactions(Exception):
    """A message already carries MAX_REACTIONS different emoji."""


def _summary(tx: WriteTx, message_id: str) -> list[dict[str, Any]]:
    rows = tx.all(
        "SELECT emoji, user_id FROM message_reactions WHERE message_id = ? ORDER BY created_at, user_id",
        (message_id,),
    )
    by_emoji: dict[str, list[str]] = {}
    for row in rows:
        by_emoji.setdefault(row["emoji"], []).append(row["user_id"])
    return [{"emoji": emoji, "count": len(users), "user_ids": users} for emoji, users in by_emoji.items()]


def react(tx: WriteTx, message: dict[str, Any], emoji: str, actor: Actor, *, add: bool) -> list[dict[str, Any]] | None:
    """Add (or take back) `actor`'s reaction; the new summary, or None when nothing changed."""
    user_id = actor.id or ""
    if add:
        known = tx.one(
            "SELECT COUNT(DISTINCT emoji), SUM(emoji = ?) FROM message_reactions WHERE message_id = ?",
            (emoji, message["id"]),
        )
        if not known[1] and known[0] >= MAX_REACTIONS:
            raise TooManyReactions()
        changed = tx.execute(
            "INSERT OR IGNORE INTO message_reactions (message_id, emoji, user_id, created_at) VALUES (?, ?, ?, ?)",
            (message["id"], emoji, user_id, now_rfc3339()),
        ).rowcount
    else:
        changed = tx.execute(
            "DELETE FROM message_reactions WHERE message_id = ? AND emoji = ? AND user_id = ?",
            (message["id"], emoji, user_id),
        ).rowcount
    if not changed:
        return None
    summary = _summary(tx, message["id"])
    now = now_rfc3339()
    tx.execute("UPDATE messages SET reactions = ?, updated_at = ? WHERE id = ?", (dumps(summary), now, message["id"]))
    payload = (ReactionAdded if add else ReactionRemoved)(
        message_id=message["id"], emoji=emoji, user_id=user_id, reactions=summary, updated_at=now
    )
    tx.emit(Event(payload, **envelope_of(message, actor)))
    return summary


# --- read markers and the inbox ------------------------------------------------------------


def mark_thread_read(tx: WriteTx, user_id: str, thread: dict[str, Any], seq: int) -> int:
    """Move a person's read marker in a thread forward (never back); when it moved, tell their
    other sessions (thread.read, addressed to them)."""
    before = tx.one(
        "SELECT last_read_seq FROM thread_reads WHERE user_id = ? AND thread_id = ?", (user_id, thread["id"])
    )
    if before is not None and before[0] >= seq:
        return int(before[0])
    tx.execute(
        "INSERT INTO thread_reads (user_id, thread_id, last_read_seq, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, thread_id) DO UPDATE SET last_read_seq = excluded.last_read_seq,"
        " updated_at = excluded.updated_at",
        (user_id, thread["id"], seq, now_rfc3339()),
    )
    tx.emit(
        Event(
            ThreadRead(thread_id=thread["id"], channel_id=thread["channel_id"], last_read_seq=seq),
            actor=Actor("user", user_id),
            org_id=thread["org_id"],
            channel_id="@" + user_id,
            thread_id=thread["id"],
        )
    )
    return seq


# The unread messages of a thread for :user: by others, after their marker and after they joined.
_UNREAD = (
    "(SELECT COUNT(*) FROM (SELECT 1 FROM messages m WHERE m.thread_id = t.id"
    " AND m.seq > COALESCE((SELECT r.last_read_seq FROM thread_reads r WHERE r.user_id = :user"
    " AND r.thread_id = t.id), 0) AND m.author_id IS NOT :user AND m.deleted_at IS NULL"
    " AND m.created_at > :joined LIMIT :cap) AS capped)"
)
_LAST_READ = "COALESCE((SELECT r.last_read_seq FROM thread_reads r WHERE r.user_id = :user AND r.thread_id = t.id), 0)"


async def joined_at(db: Database, user_id: str) -> str:
    return str(await db.scalar("SELECT created_at FROM users WHERE id = ?", (user_id,)) or "")


async def thread_unreads(db: Database, user_id: str, thread_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Per thread: (the person's read marker, their unread count up to UNREAD_CAP)."""
    ids = list(thread_ids)
    if not ids:
        return {}
    rows = await db.fetchall(
        f"SELECT t.id, {_LAST_READ} AS last_read, {_UNREAD} AS unread FROM threads t"
        " WHERE t.id IN (SELECT value FROM json_each(:ids))",
        {"user": user_id, "joined": await joined_at(db, user_id), "cap": UNREAD_CAP, "ids": dumps(ids)},
    )
    return {row[0]: (row[1], row[2]) for row in rows}


async def inbox(
    db: Database,
    user_id: str,
    channel_ids: Iterable[str],
    *,
    before: int | None,
    limit: int,
    unread_only: bool,
) -> tuple[list[Any], int | None]:
    """The threads a person follows in the channels they may read, most recently active first,
    each with their read marker, unread count and why they follow it; and the next cursor."""
    params: dict[str, Any] = {
        "user": user_id,
        "joined": await joined_at(db, user_id),
        "cap": UNREAD_CAP,
        "channels": dumps(sorted(channel_ids)),
        "before": before,
        "limit": limit + 1,
    }
    followed = (
        "FROM thread_follows f JOIN threads t ON t.id = f.thread_id"
        " WHERE f.user_id = :user AND t.channel_id IN (SELECT value FROM json_each(:channels))"
        # The comparison first: Postgres types the parameter where it first meets it.
        " AND (t.last_seq < :before OR :before IS NULL)"
    )
    columns = (
        f"t.*, f.started, f.replied, f.mentioned, f.direct, {_LAST_READ} AS last_read_seq, {_UNREAD} AS unread_count"
    )
    if unread_only:
        sql = (
            f"SELECT * FROM (SELECT {columns} {followed}) AS followed"
            " WHERE unread_count > 0 ORDER BY last_seq DESC LIMIT :limit"
        )
    else:
        # The page first (an index walk and a sort of ids), then the unread counts of its rows only.
        sql = (
            f"SELECT {columns} FROM (SELECT t.id AS page_id {followed} ORDER BY t.last_seq DESC LIMIT :limit) page"
            " JOIN threads t ON t.id = page.page_id JOIN thread_follows f ON f.thread_id = t.id AND f.user_id = :user"
            " ORDER BY t.last_seq DESC"
        )
    rows = await db.fetchall(sql, params)
    page = rows[:limit]
    return page, (page[-1]["last_seq"] if len(rows) > limit else None)


async def unread_threads(db: Database, user_id: str, channel_ids: Iterable[str]) -> int:
    """How many followed threads have something unread (the inbox's badge)."""
    return int(
        await db.scalar(
            f"SELECT COUNT(*) FROM thread_follows f JOIN threads t ON t.id = f.thread_id"
            f" WHERE f.user_id = :user AND t.channel_id IN (SELECT value FROM json_each(:channels)) AND {_UNREAD} > 0",
            {"user": user_id, "joined": await joined_at(db, user_id), "cap": 1, "channels": dumps(sorted(channel_ids))},
        )
        or 0
    )


def follow_reasons(row: Any) -> list[str]:
    return [reason for reason in ("started", "replied", "mentioned", "direct") if row[reason]]


def mark_all_read(tx: WriteTx, user_id: str, channel_ids: Iterable[str]) -> int:
    """Mark every followed thread read up to its newest message; how many moved."""
    rows = tx.all(
        "SELECT t.* FROM thread_follows f JOIN threads t ON t.id = f.thread_id"
        " LEFT JOIN thread_reads r ON r.user_id = f.user_id AND r.thread_id = t.id"
        " WHERE f.user_id = ? AND t.channel_id IN (SELECT value FROM json_each(?))"
        " AND COALESCE(r.last_read_seq, 0) < t.last_seq",
        (user_id, dumps(sorted(channel_ids))),
    )
    for row in rows:
        mark_thread_read(tx, user_id, dict(row), row["last_seq"])
    return len(rows)
