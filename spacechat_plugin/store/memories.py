"""Memories as first-class records (issue 12): each change is a revision (who, what, when) that
can be rolled back; a memory superseded by a newer one is marked invalid, not deleted (as Zep
keeps a fact's validity); a deleted memory leaves a tombstone (id, who, when) and no text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..events import Actor, Event, MemoryDeleted, MemorySaved, new_id, now_rfc3339
from .db import Database, WriteTx, dumps, loads

MEMORY_COLUMNS = (
    "id",
    "org_id",
    "team_id",
    "channel_id",
    "agent_id",
    "subject_id",
    "source_user_id",
    "candidate_id",
    "source",
    "source_ref",
    "content",
    "memory_type",
    "importance",
    "metadata",
    "status",
    "valid_from",
    "valid_until",
    "superseded_by",
    "revision",
    "delivery",
    "delivery_error",
    "host_memory_id",
    "delivered_revision",
    "created_at",
    "updated_at",
    "deleted_at",
    "deleted_by",
)


def memory_json(row: Any) -> dict[str, Any]:
    data = {column: row[column] for column in MEMORY_COLUMNS}
    data["metadata"] = loads(row["metadata"])
    return data


def revision_json(row: Any) -> dict[str, Any]:
    return {
        "revision": row["revision"],
        "action": row["action"],
        "content": row["content"],
        "memory_type": row["memory_type"],
        "importance": row["importance"],
        "status": row["status"],
        "diff": loads(row["diff"]),
        "note": row["note"],
        "actor": {"kind": row["actor_kind"], "id": row["actor_id"]},
        "created_at": row["created_at"],
    }


def _envelope(memory: dict[str, Any], actor: Actor) -> dict[str, Any]:
    return {
        "actor": actor,
        "org_id": memory["org_id"],
        "team_id": memory["team_id"],
        "channel_id": memory["channel_id"],
    }


def _revise(
    tx: WriteTx, memory: dict[str, Any], action: str, actor: Actor, *, diff: Any = None, note: str | None = None
) -> None:
    tx.execute(
        "INSERT INTO memory_revisions (memory_id, revision, action, content, memory_type, importance, status, diff,"
        " note, actor_kind, actor_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            memory["id"],
            memory["revision"],
            action,
            memory["content"],
            memory["memory_type"],
            memory["importance"],
            memory["status"],
            None if diff is None else dumps(diff),
            note,
            actor.kind,
            actor.id,
            memory["updated_at"],
        ),
    )


def create(tx: WriteTx, fields: dict[str, Any], actor: Actor, *, candidate_id: str | None = None) -> dict[str, Any]:
    """A new valid memory at revision 1; delivery `pending` when an agent should hold it."""
    now = now_rfc3339()
    row = dict.fromkeys(MEMORY_COLUMNS)
    row.update(fields)
    row.update(
        id=new_id("mem"),
        candidate_id=candidate_id,
        status="valid",
        valid_from=now,
        revision=1,
        delivery="pending" if fields.get("agent_id") else "none",
        delivered_revision=0,
        created_at=now,
        updated_at=now,
        metadata=dumps(fields.get("metadata") or {}),
    )
    tx.execute(
        f"INSERT INTO memories ({', '.join(MEMORY_COLUMNS)}) VALUES ({', '.join(':' + c for c in MEMORY_COLUMNS)})",
        row,
    )
    memory = memory_json(row)
    _revise(tx, memory, "created", actor, note=candidate_id)
    tx.emit(Event(MemorySaved(memory=memory, change="created", candidate_id=candidate_id), **_envelope(memory, actor)))
    return memory


def memory_tx(tx: WriteTx, memory_id: str) -> dict[str, Any] | None:
    row = tx.one("SELECT * FROM memories WHERE id = ?", (memory_id,))
    return None if row is None else memory_json(row)


async def get(db: Database, memory_id: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM memories WHERE id = ?", (memory_id,))
    return None if row is None else memory_json(row)


def change(
    tx: WriteTx,
    memory_id: str,
    action: str,
    actor: Actor,
    *,
    diff: Any = None,
    note: str | None = None,
    candidate_id: str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A new revision of a memory with `changes` (content, memory_type, importance, status,
    valid_until, superseded_by); the agent gets it again (delivery pending)."""
    allowed = {"content", "memory_type", "importance", "status", "valid_until", "superseded_by"}
    assert set(changes) <= allowed, f"cannot change {set(changes) - allowed}"
    sets = [f"{column} = ?" for column in changes]
    params = [*changes.values()]
    tx.execute(
        f"UPDATE memories SET {', '.join([*sets, 'revision = revision + 1', 'updated_at = ?'])},"
        " delivery = CASE WHEN agent_id IS NULL THEN 'none' ELSE 'pending' END WHERE id = ?",
        (*params, now_rfc3339(), memory_id),
    )
    memory = memory_tx(tx, memory_id)
    assert memory is not None
    _revise(tx, memory, action, actor, diff=diff, note=note)
    event = MemorySaved(memory=memory, change=action, candidate_id=candidate_id)
    tx.emit(Event(event, **_envelope(memory, actor)))
    return memory


def tombstone(tx: WriteTx, memory_id: str, actor: Actor) -> dict[str, Any]:
    """Delete a memory: its text goes from the row and from every revision; the row stays as a
    tombstone (id, who, when) so the deletion itself is on record."""
    now = now_rfc3339()
    tx.execute(
        "UPDATE memories SET status = 'deleted', content = '', metadata = '{}', revision = revision + 1,"
        " updated_at = ?, deleted_at = ?, deleted_by = ?,"
        " delivery = CASE WHEN host_memory_id IS NULL THEN 'none' ELSE 'pending' END WHERE id = ?",
        (now, now, actor.id, memory_id),
    )
    tx.execute("UPDATE memory_revisions SET content = '', diff = NULL WHERE memory_id = ?", (memory_id,))
    memory = memory_tx(tx, memory_id)
    assert memory is not None
    _revise(tx, memory, "deleted", actor)
    tx.emit(Event(MemoryDeleted(memory_id=memory_id, deleted_by=actor.id), **_envelope(memory, actor)))
    return memory


def revision_tx(tx: WriteTx, memory_id: str, revision: int) -> dict[str, Any] | None:
    row = tx.one("SELECT * FROM memory_revisions WHERE memory_id = ? AND revision = ?", (memory_id, revision))
    return None if row is None else revision_json(row)


async def revisions(db: Database, memory_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT * FROM memory_revisions WHERE memory_id = ? ORDER BY revision", (memory_id,))
    return [revision_json(row) for row in rows]


def delivered(tx: WriteTx, memory_id: str, revision: int, host_memory_id: str | None) -> None:
    """The host holds `revision` (or has forgotten the memory, for a tombstone or an invalid one)."""
    tx.execute(
        "UPDATE memories SET delivery = CASE WHEN revision = ? THEN 'delivered' ELSE delivery END,"
        " delivery_error = NULL, host_memory_id = COALESCE(?, host_memory_id),"
        " delivered_revision = MAX(delivered_revision, ?) WHERE id = ?",
        (revision, host_memory_id, revision, memory_id),
    )


def delivery_failed(tx: WriteTx, memory_id: str, revision: int, error: str) -> None:
    tx.execute(
        "UPDATE memories SET delivery = 'failed', delivery_error = ? WHERE id = ? AND revision = ?",
        (error[:300], memory_id, revision),
    )


async def undelivered(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT * FROM memories WHERE delivery IN ('pending', 'failed') ORDER BY updated_at LIMIT ?", (limit,)
    )
    return [memory_json(row) for row in rows]


async def listing(
    db: Database,
    *,
    org_id: str,
    channel_ids: Sequence[str],
    status: str | None,
    subject_id: str | None,
    before: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    marks = ",".join("?" * len(channel_ids)) or "NULL"
    clauses = ["org_id = ?", f"(channel_id IS NULL OR channel_id IN ({marks}))"]
    params: list[Any] = [org_id, *channel_ids]
    for column, value in (("status", status), ("subject_id", subject_id)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if before:
        clauses.append("updated_at < ?")
        params.append(before)
    rows = await db.fetchall(
        f"SELECT * FROM memories WHERE {' AND '.join(clauses)} ORDER BY updated_at DESC LIMIT ?", (*params, limit)
    )
    return [memory_json(row) for row in rows]


async def of_person(db: Database, user_id: str) -> list[dict[str, Any]]:
    """Memories about a person or from them (tombstones excluded)."""
    rows = await db.fetchall(
        "SELECT * FROM memories WHERE (subject_id = ? OR source_user_id = ?) AND status != 'deleted'"
        " ORDER BY created_at",
        (user_id, user_id),
    )
    return [memory_json(row) for row in rows]


def by_source_tx(tx: WriteTx, source: str, source_ref: str) -> dict[str, Any] | None:
    row = tx.one(
        "SELECT * FROM memories WHERE source = ? AND source_ref = ? AND status = 'valid'", (source, source_ref)
    )
    return None if row is None else memory_json(row)


async def by_ids(db: Database, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = await db.fetchall(f"SELECT * FROM memories WHERE id IN ({marks})", list(ids))
    return {row["id"]: memory_json(row) for row in rows}
