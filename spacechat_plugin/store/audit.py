"""The audit log: append-only, hash-chained, anchored outside the database.

Each row's `hash` is SHA-256 over its fields and the previous row's hash, so changing, removing
or inserting a row breaks the chain from that row on. Rows are appended in the same transaction
as the action they record, and SQLite triggers refuse any UPDATE or DELETE from the application.
Details never carry secrets: callers pass ids and names, never passwords or tokens.

A chain alone cannot show that its newest rows were cut off, or that someone with the file
rewrote a row and recomputed every hash after it (issue 10). So every commit that appends audit
rows also records the new head, (row id, hash), outside the database (anchor.py): in an
append-only checkpoint file beside it and in the structured log (which is meant to be shipped
off the machine). `verify` checks the chain against every checkpoint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..events import Actor, now_rfc3339
from . import sqlite
from .anchor import Checkpoint
from .db import Database, WriteTx, loads

GENESIS = "0" * 64
_FIELDS = (
    "id",
    "ts",
    "org_id",
    "actor_kind",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "ip",
    "outcome",
    "details",
    "prev_hash",
)


def row_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps([row[field] for field in _FIELDS])).hexdigest()


def append(
    tx: WriteTx,
    *,
    org_id: str | None,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    ip: str | None = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    last = tx.one("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    row: dict[str, Any] = {
        "id": (last["id"] + 1) if last else 1,
        "ts": now_rfc3339(),
        "org_id": org_id,
        "actor_kind": actor.kind,
        "actor_id": actor.id,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "ip": ip,
        "outcome": outcome,
        "details": orjson.dumps(details or {}, option=orjson.OPT_SORT_KEYS).decode(),
        "prev_hash": last["hash"] if last else GENESIS,
    }
    row["hash"] = row_hash(row)
    tx.audit_head = (row["id"], row["hash"])
    tx.execute(
        "INSERT INTO audit_log (id, ts, org_id, actor_kind, actor_id, action, target_type, target_id, ip, outcome,"
        " details, prev_hash, hash) VALUES (:id, :ts, :org_id, :actor_kind, :actor_id, :action, :target_type,"
        " :target_id, :ip, :outcome, :details, :prev_hash, :hash)",
        row,
    )
    return row


@dataclass(frozen=True)
class BrokenLink:
    row_id: int
    reason: str


def verify_rows(rows: list[Any]) -> tuple[int, BrokenLink | None]:
    """Walk the chain in id order; return how many rows check out and the first broken link."""
    previous, expected_id = GENESIS, 1
    for count, raw in enumerate(rows):
        row = dict(raw)
        if row["id"] != expected_id:
            return count, BrokenLink(expected_id, f"row {expected_id} is missing (next is {row['id']})")
        if row["prev_hash"] != previous:
            return count, BrokenLink(row["id"], "its link to the previous row does not match")
        if row_hash(row) != row["hash"]:
            return count, BrokenLink(row["id"], "its contents do not match its hash (the row was altered)")
        previous, expected_id = row["hash"], expected_id + 1
    return len(rows), None


def read_rows(path: Path) -> list[Any]:
    """Every audit row of a database file, opened read-only (the CLI's check of a stopped or
    running server's log)."""
    conn = sqlite.connect(str(path), readonly=True)
    try:
        return list(conn.execute("SELECT * FROM audit_log ORDER BY id").fetchall())
    finally:
        conn.close()


async def all_rows(db: Database) -> list[dict[str, Any]]:
    """Every audit row, oldest first, from a store (the CLI's read of a Postgres log)."""
    return [dict(row) for row in await db.fetchall("SELECT * FROM audit_log ORDER BY id")]


def verify_file(path: Path) -> tuple[int, BrokenLink | None]:
    """`verify_rows` over a database file."""
    return verify_rows(read_rows(path))


async def head(db: Database) -> Checkpoint | None:
    """The newest audit row's (id, hash): what an external witness keeps."""
    row = await db.fetchone("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    return None if row is None else Checkpoint(int(row["id"]), str(row["hash"]))


def audit_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "ts": row["ts"],
        "org_id": row["org_id"],
        "actor": {"kind": row["actor_kind"], "id": row["actor_id"]},
        "action": row["action"],
        "target": {"type": row["target_type"], "id": row["target_id"]},
        "ip": row["ip"],
        "outcome": row["outcome"],
        "details": loads(row["details"]),
        "hash": row["hash"],
    }


async def query(
    db: Database,
    *,
    org_id: str,
    actor_id: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    before: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    clauses: list[str] = ["org_id = ?"]
    params: list[Any] = [org_id]
    if actor_id:
        clauses.append("actor_id = ?")
        params.append(actor_id)
    if action:
        # `auth.` matches every auth action; an exact name matches itself.
        if action.endswith("."):
            clauses.append("action LIKE ?")
            params.append(action + "%")
        else:
            clauses.append("action = ?")
            params.append(action)
    if since:
        clauses.append("ts >= ?")
        params.append(since)
    if until:
        clauses.append("ts < ?")
        params.append(until)
    if before is not None:
        clauses.append("id < ?")
        params.append(before)
    rows = await db.fetchall(
        f"SELECT * FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?", (*params, limit)
    )
    return [audit_json(row) for row in rows]
