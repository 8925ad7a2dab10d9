"""The incidents table: every statement about incidents (the lifecycle is operations/incidents.py)."""

from __future__ import annotations

from typing import Any

from .db import Database, WriteTx, dumps, loads

COLUMNS = (
    "id, org_id, number, kind, source, title, severity, status, details, channel_id, message_id, escalated_to,"
    " opened_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by"
)


def incident_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "number": row["number"],
        "org_id": row["org_id"],
        "kind": row["kind"],
        "source": row["source"],
        "title": row["title"],
        "severity": row["severity"],
        "status": row["status"],
        "details": loads(row["details"]),
        "channel_id": row["channel_id"],
        "message_id": row["message_id"],
        "escalated_to": row["escalated_to"],
        "opened_at": row["opened_at"],
        "acknowledged_at": row["acknowledged_at"],
        "acknowledged_by": row["acknowledged_by"],
        "resolved_at": row["resolved_at"],
        "resolved_by": row["resolved_by"],
    }


def open_with_source(tx: WriteTx, org_id: str, source: str) -> dict[str, Any] | None:
    row = tx.one("SELECT * FROM incidents WHERE org_id = ? AND source = ? AND status != 'resolved'", (org_id, source))
    return None if row is None else incident_json(row)


def insert(tx: WriteTx, row: dict[str, Any]) -> dict[str, Any]:
    """Insert a new incident (`row` without its number, which is the organisation's next)."""
    number = tx.one("SELECT COALESCE(MAX(number), 0) + 1 FROM incidents WHERE org_id = ?", (row["org_id"],))[0]
    values = {**row, "number": number, "details": dumps(row["details"])}
    placeholders = ", ".join(f":{name.strip()}" for name in COLUMNS.split(","))
    tx.execute(f"INSERT INTO incidents ({COLUMNS}) VALUES ({placeholders})", values)
    return {**row, "number": number}


def set_message(tx: WriteTx, incident_id: str, message_id: str) -> None:
    tx.execute("UPDATE incidents SET message_id = ? WHERE id = ?", (message_id, incident_id))


def row(tx: WriteTx, incident_id: str) -> dict[str, Any] | None:
    found = tx.one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
    return None if found is None else incident_json(found)


def acknowledge(tx: WriteTx, incident_id: str, at: str, by: str | None) -> None:
    tx.execute(
        "UPDATE incidents SET status = 'acknowledged', acknowledged_at = ?, acknowledged_by = ? WHERE id = ?",
        (at, by, incident_id),
    )


def escalate(tx: WriteTx, incident_id: str, to: str | None) -> None:
    tx.execute("UPDATE incidents SET escalated_to = ? WHERE id = ?", (to, incident_id))


def resolve(tx: WriteTx, incident_id: str, at: str, by: str | None) -> None:
    tx.execute(
        "UPDATE incidents SET status = 'resolved', resolved_at = ?, resolved_by = ? WHERE id = ?",
        (at, by, incident_id),
    )


async def open_id_with_source(db: Database, org_id: str, source: str) -> str | None:
    found = await db.fetchone(
        "SELECT id FROM incidents WHERE org_id = ? AND source = ? AND status != 'resolved'", (org_id, source)
    )
    return None if found is None else str(found["id"])


async def get(db: Database, incident_id: str) -> dict[str, Any] | None:
    found = await db.fetchone("SELECT * FROM incidents WHERE id = ?", (incident_id,))
    return None if found is None else incident_json(found)


async def listing(db: Database, org_id: str, status: str | None, limit: int) -> list[dict[str, Any]]:
    if status:
        rows = await db.fetchall(
            "SELECT * FROM incidents WHERE org_id = ? AND status = ? ORDER BY number DESC LIMIT ?",
            (org_id, status, limit),
        )
    else:
        rows = await db.fetchall(
            "SELECT * FROM incidents WHERE org_id = ? ORDER BY number DESC LIMIT ?", (org_id, limit)
        )
    return [incident_json(found) for found in rows]


async def count_open(db: Database, org_id: str) -> int:
    found = await db.fetchone("SELECT COUNT(*) FROM incidents WHERE org_id = ? AND status != 'resolved'", (org_id,))
    return int(found[0]) if found else 0
