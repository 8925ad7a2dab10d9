"""Organisations, teams and channels: SQL and the JSON shapes the API returns."""

from __future__ import annotations

from typing import Any

from ..events import Actor, ChannelCreated, ChannelUpdated, Event, new_id, now_rfc3339
from .db import Database, WriteTx


def channel_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "org_id": row["org_id"],
        "team_id": row["team_id"],
        "name": row["name"],
        "topic": row["topic"],
        "category": row["category"],
        "private": bool(row["private"]),
        "archived": bool(row["archived"]),
        "created_at": row["created_at"],
        "last_seq": row["last_seq"],
    }


def team_json(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "org_id": row["org_id"], "name": row["name"], "created_at": row["created_at"]}


def org_json(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "created_at": row["created_at"]}


def create_org(tx: WriteTx, name: str) -> dict[str, Any]:
    row = {"id": new_id("org"), "name": name, "created_at": now_rfc3339()}
    tx.execute("INSERT INTO orgs (id, name, created_at) VALUES (:id, :name, :created_at)", row)
    return row


def create_team(tx: WriteTx, org_id: str, name: str) -> dict[str, Any]:
    row = {"id": new_id("team"), "org_id": org_id, "name": name, "created_at": now_rfc3339()}
    tx.execute("INSERT INTO teams (id, org_id, name, created_at) VALUES (:id, :org_id, :name, :created_at)", row)
    return row


def create_channel(
    tx: WriteTx,
    *,
    org_id: str,
    team_id: str,
    name: str,
    actor: Actor,
    category: str = "departments",
    topic: str = "",
    private: bool = False,
) -> dict[str, Any]:
    now = now_rfc3339()
    row = {
        "id": new_id("ch"),
        "org_id": org_id,
        "team_id": team_id,
        "name": name,
        "topic": topic,
        "category": category,
        "private": int(private),
        "archived": 0,
        "created_at": now,
        "created_by": actor.id,
        "last_seq": tx.next_seq(),
    }
    tx.execute(
        "INSERT INTO channels (id, org_id, team_id, name, topic, category, private, archived,"
        " created_at, created_by, last_seq) VALUES (:id, :org_id, :team_id, :name, :topic,"
        " :category, :private, :archived, :created_at, :created_by, :last_seq)",
        row,
    )
    channel = channel_json(row)
    tx.emit(
        Event(
            ChannelCreated(channel=channel),
            actor=actor,
            org_id=org_id,
            team_id=team_id,
            channel_id=channel["id"],
        )
    )
    return channel


def update_channel(tx: WriteTx, channel_id: str, changes: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """Change name, topic, category or archived; emit channel.updated."""
    allowed = {"name", "topic", "category", "archived"}
    assert set(changes) <= allowed, f"cannot change {set(changes) - allowed}"
    if changes:
        sets = ", ".join(f"{column} = :{column}" for column in changes)
        values = {k: int(v) if isinstance(v, bool) else v for k, v in changes.items()}
        tx.execute(f"UPDATE channels SET {sets} WHERE id = :id", {**values, "id": channel_id})
    channel = channel_json(tx.one("SELECT * FROM channels WHERE id = ?", (channel_id,)))
    tx.emit(
        Event(
            ChannelUpdated(channel=channel),
            actor=actor,
            org_id=channel["org_id"],
            team_id=channel["team_id"],
            channel_id=channel_id,
        )
    )
    return channel


def channel_name_taken(tx: WriteTx, org_id: str, name: str) -> bool:
    return tx.one("SELECT 1 FROM channels WHERE org_id = ? AND name = ?", (org_id, name)) is not None


async def get_org(db: Database, org_id: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM orgs WHERE id = ?", (org_id,))
    return None if row is None else org_json(row)


async def first_org(db: Database) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM orgs ORDER BY created_at LIMIT 1")
    return None if row is None else org_json(row)


async def list_teams(db: Database, org_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT * FROM teams WHERE org_id = ? ORDER BY name", (org_id,))
    return [team_json(row) for row in rows]


async def get_team(db: Database, team_id: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM teams WHERE id = ?", (team_id,))
    return None if row is None else team_json(row)


async def list_channels(db: Database, org_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT * FROM channels WHERE org_id = ? ORDER BY category, name", (org_id,))
    return [channel_json(row) for row in rows]


async def all_channels(db: Database) -> list[dict[str, Any]]:
    return [channel_json(row) for row in await db.fetchall("SELECT * FROM channels")]


async def list_orgs(db: Database) -> list[dict[str, Any]]:
    return [org_json(row) for row in await db.fetchall("SELECT * FROM orgs ORDER BY created_at")]


async def get_channel(db: Database, channel_id: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM channels WHERE id = ?", (channel_id,))
    return None if row is None else channel_json(row)


async def find_channel(db: Database, org_id: str, name: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM channels WHERE org_id = ? AND name = ?", (org_id, name))
    return None if row is None else channel_json(row)


def channel_by_name(tx: WriteTx, org_id: str, name: str) -> dict[str, Any] | None:
    row = tx.one("SELECT * FROM channels WHERE org_id = ? AND name = ?", (org_id, name))
    return None if row is None else channel_json(row)


def team_name_taken(tx: WriteTx, org_id: str, name: str) -> bool:
    return tx.one("SELECT 1 FROM teams WHERE org_id = ? AND name = ?", (org_id, name)) is not None


def org_channel(tx: WriteTx, org_id: str, channel_id: str) -> dict[str, Any] | None:
    row = tx.one("SELECT * FROM channels WHERE id = ? AND org_id = ?", (channel_id, org_id))
    return None if row is None else channel_json(row)


def first_team_id(tx: WriteTx, org_id: str) -> str:
    """The organisation's oldest team (where work with no home channel goes)."""
    row = tx.one("SELECT id FROM teams WHERE org_id = ? ORDER BY created_at, id LIMIT 1", (org_id,))
    return str(row["id"])
