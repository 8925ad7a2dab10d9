"""The incidents tables: every statement about incidents, their roles and their timeline (the
lifecycle is operations/incidents.py)."""

from __future__ import annotations

from typing import Any

from .db import Database, WriteTx, dumps, loads

COLUMNS = (
    "id, org_id, number, kind, source, title, severity, status, details, channel_id, message_id, escalated_to,"
    " opened_at, acknowledged_at, acknowledged_by, mitigated_at, resolved_at, resolved_by, closed_at, opened_from,"
    " last_update_at, reminded_at, retrospective"
)
ACTIVE = ("triage", "investigating", "mitigated")
# The column that records when an incident reached each status.
STATUS_TIME = {"investigating": "acknowledged_at", "mitigated": "mitigated_at", "resolved": "resolved_at"}
STATUS_TIME["closed"] = "closed_at"


def incident_json(row: Any) -> dict[str, Any]:
    found = dict(row)
    found["details"] = loads(found["details"])
    return found


def open_with_source(tx: WriteTx, org_id: str, source: str) -> dict[str, Any] | None:
    row = tx.one(
        "SELECT * FROM incidents WHERE org_id = ? AND source = ? AND status NOT IN ('resolved', 'closed')",
        (org_id, source),
    )
    return None if row is None else incident_json(row)


def insert(tx: WriteTx, row: dict[str, Any]) -> dict[str, Any]:
    """Insert a new incident (`row` without its number, which is the organisation's next)."""
    number = tx.one("SELECT COALESCE(MAX(number), 0) + 1 FROM incidents WHERE org_id = ?", (row["org_id"],))[0]
    names = [name.strip() for name in COLUMNS.split(",")]
    values = {name: None for name in names} | row | {"number": number, "details": dumps(row["details"])}
    tx.execute(f"INSERT INTO incidents ({COLUMNS}) VALUES ({', '.join(f':{n}' for n in names)})", values)
    return {name: None for name in names} | row | {"number": number}


def set_message(tx: WriteTx, incident_id: str, message_id: str) -> None:
    tx.execute("UPDATE incidents SET message_id = ? WHERE id = ?", (message_id, incident_id))


def row(tx: WriteTx, incident_id: str) -> dict[str, Any] | None:
    found = tx.one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
    return None if found is None else incident_json(found)


def set_status(tx: WriteTx, incident_id: str, status: str, at: str, by: str | None) -> None:
    """Move to `status`, recording when (once: a time already set is kept) and, for
    investigating and resolved, by whom."""
    column = STATUS_TIME[status]
    who = {"investigating": "acknowledged_by", "resolved": "resolved_by"}.get(status)
    extra = f", {who} = COALESCE({who}, :by)" if who else ""
    tx.execute(
        f"UPDATE incidents SET status = :status, {column} = COALESCE({column}, :at){extra} WHERE id = :id",
        {"status": status, "at": at, "by": by, "id": incident_id},
    )


def escalate(tx: WriteTx, incident_id: str, to: str | None) -> None:
    tx.execute("UPDATE incidents SET escalated_to = ? WHERE id = ?", (to, incident_id))


def set_severity(tx: WriteTx, incident_id: str, severity: str) -> None:
    tx.execute("UPDATE incidents SET severity = ? WHERE id = ?", (severity, incident_id))


def updated(tx: WriteTx, incident_id: str, at: str) -> None:
    tx.execute("UPDATE incidents SET last_update_at = ? WHERE id = ?", (at, incident_id))


def reminded(tx: WriteTx, incident_id: str, at: str) -> None:
    tx.execute("UPDATE incidents SET reminded_at = ? WHERE id = ?", (at, incident_id))


def set_retrospective(tx: WriteTx, incident_id: str, text: str) -> None:
    tx.execute("UPDATE incidents SET retrospective = ? WHERE id = ?", (text, incident_id))


# --- roles and timeline --------------------------------------------------------------------


def assign_role(tx: WriteTx, incident_id: str, role: str, user_id: str, by: str | None, at: str) -> None:
    tx.execute(
        "INSERT INTO incident_roles (incident_id, role, user_id, assigned_by, assigned_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (incident_id, role) DO UPDATE SET user_id = excluded.user_id,"
        " assigned_by = excluded.assigned_by, assigned_at = excluded.assigned_at",
        (incident_id, role, user_id, by, at),
    )


def roles_tx(tx: WriteTx, incident_id: str) -> dict[str, str]:
    return {
        r["role"]: r["user_id"] for r in tx.all("SELECT * FROM incident_roles WHERE incident_id = ?", (incident_id,))
    }


async def roles(db: Database, incident_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT role, user_id, assigned_by, assigned_at FROM incident_roles WHERE incident_id = ? ORDER BY role",
        (incident_id,),
    )
    return [dict(found) for found in rows]


def add_timeline(
    tx: WriteTx,
    incident_id: str,
    *,
    at: str,
    kind: str,
    actor_kind: str,
    actor_id: str | None,
    text: str,
    message_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    tx.execute(
        "INSERT INTO incident_timeline (incident_id, at, kind, actor_kind, actor_id, text, message_id, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (incident_id, at, kind, actor_kind, actor_id, text, message_id, dumps(data or {})),
    )


def timeline_tx(tx: WriteTx, incident_id: str) -> list[dict[str, Any]]:
    rows = tx.all("SELECT * FROM incident_timeline WHERE incident_id = ? ORDER BY id", (incident_id,))
    return [{**dict(found), "data": loads(found["data"])} for found in rows]


async def timeline(db: Database, incident_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT * FROM incident_timeline WHERE incident_id = ? ORDER BY id", (incident_id,))
    return [{**dict(found), "data": loads(found["data"])} for found in rows]


def pinned(tx: WriteTx, incident_id: str, message_id: str) -> bool:
    found = tx.one(
        "SELECT 1 FROM incident_timeline WHERE incident_id = ? AND kind = 'pin' AND message_id = ?",
        (incident_id, message_id),
    )
    return found is not None


# --- reads ---------------------------------------------------------------------------------


async def open_id_with_source(db: Database, org_id: str, source: str) -> str | None:
    found = await db.fetchone(
        "SELECT id FROM incidents WHERE org_id = ? AND source = ? AND status NOT IN ('resolved', 'closed')",
        (org_id, source),
    )
    return None if found is None else str(found["id"])


async def get(db: Database, incident_id: str) -> dict[str, Any] | None:
    found = await db.fetchone("SELECT * FROM incidents WHERE id = ?", (incident_id,))
    return None if found is None else incident_json(found)


async def listing(db: Database, org_id: str, status: str | None, limit: int) -> list[dict[str, Any]]:
    if status == "active":
        rows = await db.fetchall(
            "SELECT * FROM incidents WHERE org_id = ? AND status IN ('triage', 'investigating', 'mitigated')"
            " ORDER BY number DESC LIMIT ?",
            (org_id, limit),
        )
    elif status:
        rows = await db.fetchall(
            "SELECT * FROM incidents WHERE org_id = ? AND status = ? ORDER BY number DESC LIMIT ?",
            (org_id, status, limit),
        )
    else:
        rows = await db.fetchall(
            "SELECT * FROM incidents WHERE org_id = ? ORDER BY number DESC LIMIT ?", (org_id, limit)
        )
    return [incident_json(found) for found in rows]


async def active(db: Database) -> list[dict[str, Any]]:
    """Every incident not yet resolved, of every organisation (for update reminders)."""
    rows = await db.fetchall("SELECT * FROM incidents WHERE status IN ('triage', 'investigating', 'mitigated')")
    return [incident_json(found) for found in rows]


async def count_open(db: Database, org_id: str) -> int:
    found = await db.fetchone(
        "SELECT COUNT(*) FROM incidents WHERE org_id = ? AND status IN ('triage', 'investigating', 'mitigated')",
        (org_id,),
    )
    return int(found[0]) if found else 0
