"""Approvals, approval policies and the rules people made by deciding (agents/approvals.py)."""

from __future__ import annotations

from typing import Any

from .db import Database, WriteTx, dumps, loads

COLUMNS = (
    "id, org_id, agent_id, channel_id, thread_id, turn_id, call_id, tool, arguments, policy, risk, message_id,"
    " status, requested_at, escalated_at, escalated_to, decision, decided_by, decided_at, rule"
)


def approval_json(row: Any) -> dict[str, Any]:
    found = dict(row)
    found["arguments"] = loads(found["arguments"])
    return found


def insert(tx: WriteTx, row: dict[str, Any]) -> dict[str, Any]:
    full = {name.strip(): None for name in COLUMNS.split(",")} | row
    placeholders = ", ".join(f":{name.strip()}" for name in COLUMNS.split(","))
    tx.execute(
        f"INSERT INTO approvals ({COLUMNS}) VALUES ({placeholders})", {**full, "arguments": dumps(row["arguments"])}
    )
    return full


def row(tx: WriteTx, approval_id: str) -> dict[str, Any] | None:
    found = tx.one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
    return None if found is None else approval_json(found)


def set_message(tx: WriteTx, approval_id: str, message_id: str) -> None:
    tx.execute("UPDATE approvals SET message_id = ? WHERE id = ?", (message_id, approval_id))


def decide(tx: WriteTx, approval_id: str, *, status: str, decision: str, by: str | None, at: str, rule: str) -> bool:
    """Record the decision of a pending approval; False when it was already decided."""
    changed = tx.execute(
        "UPDATE approvals SET status = ?, decision = ?, decided_by = ?, decided_at = ?, rule = ?"
        " WHERE id = ? AND status = 'pending'",
        (status, decision, by, at, rule, approval_id),
    ).rowcount
    return bool(changed)


def escalate(tx: WriteTx, approval_id: str, to: str, at: str) -> bool:
    changed = tx.execute(
        "UPDATE approvals SET escalated_to = ?, escalated_at = ? WHERE id = ? AND status = 'pending'"
        " AND escalated_at IS NULL",
        (to, at, approval_id),
    ).rowcount
    return bool(changed)


async def get(db: Database, approval_id: str) -> dict[str, Any] | None:
    found = await db.fetchone("SELECT * FROM approvals WHERE id = ?", (approval_id,))
    return None if found is None else approval_json(found)


async def pending(db: Database, org_id: str | None, limit: int = 500) -> list[dict[str, Any]]:
    """Pending approvals, oldest first (of one organisation, or of all with None)."""
    if org_id is None:
        rows = await db.fetchall(
            "SELECT * FROM approvals WHERE status = 'pending' ORDER BY requested_at LIMIT ?", (limit,)
        )
    else:
        rows = await db.fetchall(
            "SELECT * FROM approvals WHERE status = 'pending' AND org_id = ? ORDER BY requested_at LIMIT ?",
            (org_id, limit),
        )
    return [approval_json(found) for found in rows]


async def pending_of_turn(db: Database, turn_id: str) -> list[str]:
    rows = await db.fetchall("SELECT id FROM approvals WHERE turn_id = ? AND status = 'pending'", (turn_id,))
    return [str(row[0]) for row in rows]


async def of_thread(db: Database, thread_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT * FROM approvals WHERE thread_id = ? ORDER BY requested_at", (thread_id,))
    return [approval_json(found) for found in rows]


# --- policies ------------------------------------------------------------------------------


async def policies(db: Database, org_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT agent_id, tool, policy, risk, updated_by, updated_at FROM approval_policies WHERE org_id = ?"
        " ORDER BY tool, agent_id",
        (org_id,),
    )
    return [dict(found) for found in rows]


def put_policy(tx: WriteTx, org_id: str, agent_id: str, tool: str, policy: str, risk: str, by: str, at: str) -> None:
    tx.execute(
        "INSERT INTO approval_policies (org_id, agent_id, tool, policy, risk, updated_by, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org_id, agent_id, tool) DO UPDATE SET policy = excluded.policy,"
        " risk = excluded.risk, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        (org_id, agent_id, tool, policy, risk, by, at),
    )


def delete_policy(tx: WriteTx, org_id: str, agent_id: str, tool: str) -> bool:
    deleted = tx.execute(
        "DELETE FROM approval_policies WHERE org_id = ? AND agent_id = ? AND tool = ?", (org_id, agent_id, tool)
    ).rowcount
    return bool(deleted)


# --- rules people made ---------------------------------------------------------------------


def add_rule(tx: WriteTx, rule: dict[str, Any]) -> None:
    tx.execute(
        "INSERT INTO approval_rules (id, org_id, agent_id, tool, thread_id, decision, approval_id, created_by,"
        " created_at) VALUES (:id, :org_id, :agent_id, :tool, :thread_id, :decision, :approval_id, :created_by,"
        " :created_at)",
        rule,
    )


async def matching_rules(db: Database, org_id: str, agent_id: str, tool: str, thread_id: str) -> list[dict[str, Any]]:
    """The live rules for this call: remembered denials (anywhere) and this thread's approvals."""
    rows = await db.fetchall(
        "SELECT * FROM approval_rules WHERE org_id = ? AND tool = ? AND agent_id IN (?, '*') AND revoked_at IS NULL"
        " AND (thread_id IS NULL OR thread_id = ?) ORDER BY decision = 'deny' DESC, created_at",
        (org_id, tool, agent_id, thread_id),
    )
    return [dict(found) for found in rows]


async def rules(db: Database, org_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT * FROM approval_rules WHERE org_id = ? AND revoked_at IS NULL ORDER BY created_at DESC", (org_id,)
    )
    return [dict(found) for found in rows]


def revoke_rule(tx: WriteTx, org_id: str, rule_id: str, at: str) -> bool:
    changed = tx.execute(
        "UPDATE approval_rules SET revoked_at = ? WHERE id = ? AND org_id = ? AND revoked_at IS NULL",
        (at, rule_id, org_id),
    ).rowcount
    return bool(changed)
