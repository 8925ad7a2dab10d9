"""Small state that hook plugins keep across restarts (`plugin_state`), by plugin and key."""

from __future__ import annotations

from typing import Any

from ..events import now_rfc3339
from .db import Database, WriteTx, dumps, loads


async def get(db: Database, plugin: str, key: str) -> Any:
    row = await db.fetchone("SELECT value FROM plugin_state WHERE plugin = ? AND key = ?", (plugin, key))
    return None if row is None else loads(row["value"])


def put(tx: WriteTx, plugin: str, key: str, value: Any) -> None:
    tx.execute(
        "INSERT INTO plugin_state (plugin, key, value, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (plugin, key, dumps(value), now_rfc3339()),
    )


def delete(tx: WriteTx, plugin: str, key: str) -> None:
    tx.execute("DELETE FROM plugin_state WHERE plugin = ? AND key = ?", (plugin, key))


async def every(db: Database, plugin: str) -> dict[str, Any]:
    rows = await db.fetchall("SELECT key, value FROM plugin_state WHERE plugin = ?", (plugin,))
    return {row["key"]: loads(row["value"]) for row in rows}
