"""Memory policies, consent and the candidate queue: SQL and the JSON shapes the API returns.

Memories themselves (records, revisions, tombstones) are in `memories.py`; vectors in
`vectors.py`. Every write runs in the writer's transaction with its events (issue 12).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from ..events import Actor, Event, MemoryCandidateCreated, MemoryRejected, new_id, now_rfc3339
from .db import Database, WriteTx, dumps, loads

# --- policies ------------------------------------------------------------------------------


def policy_row_json(row: Any) -> dict[str, Any]:
    return {
        "scope_type": row["scope_type"],
        "scope_id": row["scope_id"],
        "settings": loads(row["settings"]),
        "updated_at": row["updated_at"],
        "updated_by": row["updated_by"],
    }


def put_policy(
    tx: WriteTx, *, org_id: str, scope_type: str, scope_id: str, settings: dict[str, Any], actor: Actor
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Replace what one level sets; return the new row and the one it replaced."""
    old = tx.one("SELECT * FROM memory_policies WHERE scope_type = ? AND scope_id = ?", (scope_type, scope_id))
    row = {
        "scope_type": scope_type,
        "scope_id": scope_id,
        "org_id": org_id,
        "settings": dumps(settings),
        "updated_at": now_rfc3339(),
        "updated_by": actor.id,
    }
    tx.execute(
        "INSERT INTO memory_policies (scope_type, scope_id, org_id, settings, updated_at, updated_by)"
        " VALUES (:scope_type, :scope_id, :org_id, :settings, :updated_at, :updated_by)"
        " ON CONFLICT(scope_type, scope_id) DO UPDATE SET settings = excluded.settings,"
        " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        row,
    )
    return policy_row_json(row), (None if old is None else policy_row_json(old))


async def policies(db: Database, org_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT * FROM memory_policies WHERE org_id = ? ORDER BY scope_type, scope_id", (org_id,))
    return [policy_row_json(row) for row in rows]


def policy_levels_tx(tx: WriteTx, org_id: str, team_id: str | None, channel_id: str | None) -> list[Any]:
    return [_level(tx.one, "org", org_id), _level(tx.one, "team", team_id), _level(tx.one, "channel", channel_id)]


async def policy_levels(
    db: Database, org_id: str, team_id: str | None, channel_id: str | None
) -> list[dict[str, Any] | None]:
    rows = await db.fetchall(
        "SELECT scope_type, scope_id, settings FROM memory_policies"
        " WHERE (scope_type = 'org' AND scope_id = ?) OR (scope_type = 'team' AND scope_id = ?)"
        " OR (scope_type = 'channel' AND scope_id = ?)",
        (org_id, team_id or "", channel_id or ""),
    )
    found = {row["scope_type"]: loads(row["settings"]) for row in rows}
    return [found.get("org"), found.get("team"), found.get("channel")]


def _level(one: Any, scope_type: str, scope_id: str | None) -> dict[str, Any] | None:
    if not scope_id:
        return None
    row = one("SELECT settings FROM memory_policies WHERE scope_type = ? AND scope_id = ?", (scope_type, scope_id))
    return None if row is None else loads(row["settings"])


async def retention_levels(db: Database) -> list[dict[str, Any]]:
    """Every level that sets a retention (the purge job's starting point)."""
    rows = await db.fetchall("SELECT scope_type, scope_id, org_id, settings FROM memory_policies")
    return [
        {"scope_type": r["scope_type"], "scope_id": r["scope_id"], "org_id": r["org_id"], **loads(r["settings"])}
        for r in rows
    ]


# --- consent -------------------------------------------------------------------------------


def set_consent(tx: WriteTx, user_id: str, org_id: str, consent: str) -> str | None:
    """Record a person's choice; return the previous one (None if they had not chosen)."""
    old = tx.one("SELECT consent FROM memory_consent WHERE user_id = ?", (user_id,))
    tx.execute(
        "INSERT INTO memory_consent (user_id, org_id, consent, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(user_id) DO UPDATE SET consent = excluded.consent, updated_at = excluded.updated_at",
        (user_id, org_id, consent, now_rfc3339()),
    )
    return None if old is None else str(old["consent"])


def consents_tx(tx: WriteTx, user_ids: Collection[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    marks = ",".join("?" * len(user_ids))
    rows = tx.all(f"SELECT user_id, consent FROM memory_consent WHERE user_id IN ({marks})", list(user_ids))
    return {row["user_id"]: row["consent"] for row in rows}


async def consent_of(db: Database, user_id: str) -> str | None:
    value = await db.scalar("SELECT consent FROM memory_consent WHERE user_id = ?", (user_id,))
    return None if value is None else str(value)


# --- candidates ----------------------------------------------------------------------------

CANDIDATE_COLUMNS = (
    "id",
    "org_id",
    "team_id",
    "channel_id",
    "thread_id",
    "agent_id",
    "source",
    "source_ref",
    "source_message_id",
    "source_user_id",
    "subject_id",
    "content",
    "memory_type",
    "importance",
    "metadata",
    "status",
    "group_id",
    "original_content",
    "diff",
    "reason",
    "memory_id",
    "decided_by",
    "decided_at",
    "created_at",
)


def candidate_json(row: Any) -> dict[str, Any]:
    data = {column: row[column] for column in CANDIDATE_COLUMNS}
    data["metadata"] = loads(row["metadata"])
    data["diff"] = loads(row["diff"])
    return data


def _envelope(candidate: dict[str, Any], actor: Actor) -> dict[str, Any]:
    return {
        "actor": actor,
        "org_id": candidate["org_id"],
        "team_id": candidate["team_id"],
        "channel_id": candidate["channel_id"],
        "thread_id": candidate["thread_id"],
    }


def create_candidate(tx: WriteTx, fields: dict[str, Any], actor: Actor) -> dict[str, Any]:
    row = dict.fromkeys(CANDIDATE_COLUMNS)
    row.update(fields)
    row["id"] = row["id"] or new_id("cand")
    row["status"] = "pending"
    row["created_at"] = now_rfc3339()
    row["metadata"] = dumps(fields.get("metadata") or {})
    row["diff"] = None
    tx.execute(
        f"INSERT INTO memory_candidates ({', '.join(CANDIDATE_COLUMNS)})"
        f" VALUES ({', '.join(':' + c for c in CANDIDATE_COLUMNS)})",
        row,
    )
    candidate = candidate_json(row)
    tx.emit(Event(MemoryCandidateCreated(candidate=candidate), **_envelope(candidate, actor)))
    return candidate


def candidate_tx(tx: WriteTx, candidate_id: str) -> dict[str, Any] | None:
    row = tx.one("SELECT * FROM memory_candidates WHERE id = ?", (candidate_id,))
    return None if row is None else candidate_json(row)


async def get_candidate(db: Database, candidate_id: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM memory_candidates WHERE id = ?", (candidate_id,))
    return None if row is None else candidate_json(row)


def pending_for_ref(tx: WriteTx, source: str, source_ref: str) -> dict[str, Any] | None:
    row = tx.one(
        "SELECT * FROM memory_candidates WHERE source = ? AND source_ref = ? AND status = 'pending'",
        (source, source_ref),
    )
    return None if row is None else candidate_json(row)


def update_pending_content(tx: WriteTx, candidate_id: str, content: str) -> None:
    tx.execute("UPDATE memory_candidates SET content = ? WHERE id = ? AND status = 'pending'", (content, candidate_id))


def set_group(tx: WriteTx, candidate_id: str, group_id: str) -> None:
    tx.execute("UPDATE memory_candidates SET group_id = ? WHERE id = ?", (group_id, candidate_id))


def decide(
    tx: WriteTx,
    candidate_id: str,
    *,
    status: str,
    actor: Actor,
    content: str | None = None,
    original: str | None = None,
    diff: list[str] | None = None,
    reason: str | None = None,
    memory_id: str | None = None,
) -> dict[str, Any]:
    """Move a pending candidate to its decision; the caller checked it is pending."""
    tx.execute(
        "UPDATE memory_candidates SET status = ?, content = COALESCE(?, content), original_content = ?, diff = ?,"
        " reason = ?, memory_id = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = 'pending'",
        (
            status,
            content,
            original,
            None if diff is None else dumps(diff),
            reason,
            memory_id,
            actor.id,
            now_rfc3339(),
            candidate_id,
        ),
    )
    candidate = candidate_tx(tx, candidate_id)
    assert candidate is not None
    if status in ("rejected", "withdrawn"):
        tx.emit(Event(MemoryRejected(candidate=candidate), **_envelope(candidate, actor)))
    return candidate


def withdraw_for_person(tx: WriteTx, user_id: str, actor: Actor) -> list[str]:
    """A person opted out: their pending candidates (about them or from them) are withdrawn."""
    ids = [
        row["id"]
        for row in tx.all(
            "SELECT id FROM memory_candidates WHERE status = 'pending' AND (subject_id = ? OR source_user_id = ?)",
            (user_id, user_id),
        )
    ]
    for candidate_id in ids:
        decide(tx, candidate_id, status="withdrawn", actor=actor, reason="the person opted out of memory")
    return ids


def forget_candidates_of(tx: WriteTx, memory_id: str) -> list[str]:
    """The candidates that became (or were merged into) a deleted memory keep no text either."""
    ids = [row["id"] for row in tx.all("SELECT id FROM memory_candidates WHERE memory_id = ?", (memory_id,))]
    tx.execute(
        "UPDATE memory_candidates SET content = '', original_content = NULL, diff = NULL, metadata = '{}'"
        " WHERE memory_id = ?",
        (memory_id,),
    )
    return ids


def queue_clause(org_id: str, status: str, channel_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """A queue's filter: its organisation and status, and only channels the reviewer may read
    (candidates with no channel are the organisation's and visible to every reviewer)."""
    marks = ",".join("?" * len(channel_ids)) or "NULL"
    return (
        f"org_id = ? AND status = ? AND (channel_id IS NULL OR channel_id IN ({marks}))",
        [org_id, status, *channel_ids],
    )


async def queue(
    db: Database, *, org_id: str, status: str, channel_ids: Sequence[str], before: str | None, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of the queue, oldest first for pending (first in, first reviewed), newest first
    otherwise; with the total that matches."""
    where, params = queue_clause(org_id, status, channel_ids)
    total = await db.scalar(f"SELECT COUNT(*) FROM memory_candidates WHERE {where}", params)
    order = "ASC" if status == "pending" else "DESC"
    if before is not None:
        where += " AND created_at > ?" if order == "ASC" else " AND created_at < ?"
        params.append(before)
    rows = await db.fetchall(
        f"SELECT * FROM memory_candidates WHERE {where} ORDER BY created_at {order}, id {order} LIMIT ?",
        (*params, limit),
    )
    return [candidate_json(row) for row in rows], int(total or 0)


async def candidates_of_person(db: Database, user_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT * FROM memory_candidates WHERE subject_id = ? OR source_user_id = ? ORDER BY created_at",
        (user_id, user_id),
    )
    return [candidate_json(row) for row in rows]


async def group_members(db: Database, group_id: str) -> list[str]:
    rows = await db.fetchall(
        "SELECT id FROM memory_candidates WHERE group_id = ? AND status = 'pending' ORDER BY created_at", (group_id,)
    )
    return [row["id"] for row in rows]


# --- the ingestion cursor ------------------------------------------------------------------


async def cursor(db: Database, key: str) -> int:
    value = await db.scalar("SELECT value FROM meta WHERE key = ?", (key,))
    return int(value) if value is not None else 0


def set_cursor(tx: WriteTx, key: str, seq: int) -> None:
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, str(seq)),
    )


async def events_of_types(db: Database, after: int, types: Sequence[str], limit: int) -> list[Any]:
    marks = ",".join("?" * len(types))
    return await db.fetchall(
        f"SELECT seq, event_type, body FROM events WHERE seq > ? AND event_type IN ({marks}) ORDER BY seq LIMIT ?",
        (after, *types, limit),
    )


async def last_event_seq(db: Database) -> int:
    return int(await db.scalar("SELECT COALESCE(MAX(seq), 0) FROM events") or 0)
