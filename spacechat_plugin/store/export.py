"""What a person's export holds (issue 12, point 6): their messages, memories about them or from
them, their candidates and their audit trail; SQL only, the zip is made in memory/export.py."""

from __future__ import annotations

from typing import Any

from .audit import audit_json
from .db import Database
from .messages import message_json


async def messages_by(db: Database, user_id: str, org_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT * FROM messages WHERE author_kind = 'user' AND author_id = ? AND org_id = ? ORDER BY seq",
        (user_id, org_id),
    )
    return [message_json(row) for row in rows]


async def audit_trail(db: Database, user_id: str, org_id: str) -> list[dict[str, Any]]:
    """Audit rows the person caused or that act on them."""
    rows = await db.fetchall(
        "SELECT * FROM audit_log WHERE (actor_id = ? OR target_id = ?) AND (org_id = ? OR org_id IS NULL) ORDER BY id",
        (user_id, user_id, org_id),
    )
    return [audit_json(row) for row in rows]
