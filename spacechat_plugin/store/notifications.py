"""Notification levels per person and channel, and who follows a thread (issue 13)."""

from __future__ import annotations

from typing import Any

from ..events import now_rfc3339
from .db import Database, WriteTx


async def all_levels(db: Database) -> list[tuple[str, str, str]]:
    """Every stored level as (user id, channel id, level); people without a row have the default."""
    rows = await db.fetchall("SELECT user_id, channel_id, level FROM notification_levels")
    return [(row["user_id"], row["channel_id"], row["level"]) for row in rows]


def set_level(tx: WriteTx, user_id: str, channel_id: str, level: str, default: str) -> None:
    """Store a level; the default is kept as no row."""
    if level == default:
        tx.execute("DELETE FROM notification_levels WHERE user_id = ? AND channel_id = ?", (user_id, channel_id))
        return
    tx.execute(
        "INSERT INTO notification_levels (user_id, channel_id, level, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, channel_id) DO UPDATE SET level = excluded.level, updated_at = excluded.updated_at",
        (user_id, channel_id, level, now_rfc3339()),
    )


async def thread_followers(db: Database, thread_id: str) -> set[str]:
    """The people who started a thread or replied in it (its human authors)."""
    rows = await db.fetchall(
        "SELECT DISTINCT author_id FROM messages"
        " WHERE thread_id = ? AND author_kind = 'user' AND author_id IS NOT NULL",
        (thread_id,),
    )
    return {row["author_id"] for row in rows}


async def mentioned(db: Database, message_id: str) -> set[str]:
    """The people a message mentions (its `@handles`, resolved when it was stored)."""
    rows = await db.fetchall("SELECT user_id FROM message_mentions WHERE message_id = ?", (message_id,))
    return {row["user_id"] for row in rows}


async def people(db: Database, user_ids: list[str]) -> dict[str, Any]:
    """Role and state of these users, by id (who may be told about what)."""
    if not user_ids:
        return {}
    marks = ",".join("?" * len(user_ids))
    rows = await db.fetchall(
        f"SELECT id, org_id, kind, role, deactivated_at FROM users WHERE id IN ({marks})",
        tuple(user_ids),
    )
    return {row["id"]: row for row in rows}
