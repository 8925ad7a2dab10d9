"""Small reads about incidents for the observability routes (the incident logic is incidents.py)."""

from __future__ import annotations

from .db import Database


async def count_open(db: Database, org_id: str) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM incidents WHERE org_id = ? AND status != 'resolved'", (org_id,))
    return int(row[0]) if row else 0
