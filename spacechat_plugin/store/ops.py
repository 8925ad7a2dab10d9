"""Operations waiting for a second operator (`pending_ops`), and the reads a retry needs."""

from __future__ import annotations

from typing import Any

from .db import Database, WriteTx, dumps, loads

FIELDS = (
    "id",
    "action",
    "target",
    "reason",
    "requested_by",
    "requested_at",
    "status",
    "decided_by",
    "decided_at",
    "message_id",
)


def pending_json(row: Any) -> dict[str, Any]:
    return {key: row[key] for key in FIELDS} | {"result": loads(row["result"])}


def insert_pending(
    tx: WriteTx,
    *,
    operation_id: str,
    org_id: str,
    action: str,
    target: str,
    reason: str,
    requested_by: str | None,
    requested_at: str,
    message_id: str | None,
    thread_id: str | None,
) -> dict[str, Any]:
    tx.execute(
        "INSERT INTO pending_ops (id, org_id, action, target, reason, requested_by, requested_at, status,"
        " message_id, result) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        (
            operation_id,
            org_id,
            action,
            target,
            reason,
            requested_by,
            requested_at,
            message_id,
            dumps({"thread_id": thread_id}),
        ),
    )
    return pending_json(tx.one("SELECT * FROM pending_ops WHERE id = ?", (operation_id,)))


def decide_pending(tx: WriteTx, operation_id: str, status: str, by: str | None, at: str) -> bool:
    """Mark a pending operation approved or denied; False when it was decided meanwhile."""
    changed = tx.execute(
        "UPDATE pending_ops SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = 'pending'",
        (status, by, at, operation_id),
    ).rowcount
    return bool(changed)


def finish_pending(tx: WriteTx, operation_id: str, ok: bool, result: Any) -> None:
    tx.execute(
        "UPDATE pending_ops SET status = ?, result = ? WHERE id = ?",
        ("done" if ok else "failed", dumps(result), operation_id),
    )


async def get_pending(db: Database, operation_id: str) -> Any:
    """The raw row (`result` still JSON text), or None."""
    return await db.fetchone("SELECT * FROM pending_ops WHERE id = ?", (operation_id,))


async def requested_by(db: Database, operation_id: str) -> str | None:
    row = await db.fetchone("SELECT requested_by FROM pending_ops WHERE id = ?", (operation_id,))
    return None if row is None else row["requested_by"]


async def list_pending(db: Database, org_id: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT * FROM pending_ops WHERE org_id = ? ORDER BY requested_at DESC LIMIT ?", (org_id, limit)
    )
    return [pending_json(row) for row in rows]


async def last_agent_reply_id(db: Database, channel_id: str, thread_id: str | None) -> str | None:
    """The channel's (or thread's) last plain agent reply: the turn a retry runs again."""
    where, params = ("thread_id = ?", [thread_id]) if thread_id else ("channel_id = ?", [channel_id])
    row = await db.fetchone(
        f"SELECT id FROM messages WHERE {where} AND author_kind = 'agent' AND blocks IS NULL ORDER BY seq DESC LIMIT 1",
        params,
    )
    return None if row is None else str(row["id"])


async def last_failed_reply(db: Database, channel_id: str, thread_id: str | None) -> tuple[str, dict[str, Any]] | None:
    """The last failed agent reply of a channel (or thread): `(id, metadata)`."""
    where, params = ("thread_id = ?", [thread_id]) if thread_id else ("channel_id = ?", [channel_id])
    row = await db.fetchone(
        f"SELECT id, metadata FROM messages WHERE {where} AND author_kind = 'agent' AND state = 'failed'"
        " ORDER BY seq DESC LIMIT 1",
        params,
    )
    return None if row is None else (str(row["id"]), loads(row["metadata"]) or {})
