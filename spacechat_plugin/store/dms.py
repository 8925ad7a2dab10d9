"""Direct conversations: private channels of kind 'dm' whose members are fixed at creation.

One conversation per set of members (as in Slack and Zulip): its name is made of the members'
ids, so asking again for the same people finds it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from ..events import Actor
from . import identity, tenancy
from .db import Database, WriteTx, dumps


def dm_name(member_ids: Iterable[str]) -> str:
    # A ':' never appears in a channel name people choose (models.CHANNEL_NAME), so no clash.
    return "dm:" + hashlib.sha256("\n".join(sorted(set(member_ids))).encode()).hexdigest()[:24]


def find_or_create(tx: WriteTx, org_id: str, member_ids: list[str], actor: Actor) -> tuple[dict[str, Any], bool]:
    """The direct conversation of exactly these members, and whether it was made now."""
    name = dm_name(member_ids)
    existing = tenancy.channel_by_name(tx, org_id, name)
    if existing is not None:
        return existing, False
    team = tx.one("SELECT id FROM teams WHERE org_id = ? ORDER BY created_at LIMIT 1", (org_id,))
    channel = tenancy.create_channel(
        tx, org_id=org_id, team_id=team["id"], name=name, actor=actor, category="dm", private=True, kind="dm"
    )
    for user_id in sorted(set(member_ids)):
        identity.add_member(tx, channel, user_id, actor)
    return channel, True


async def active_users(db: Database, org_id: str, user_ids: Iterable[str]) -> list[Any]:
    return await db.fetchall(
        "SELECT id, kind, name, handle FROM users WHERE org_id = ? AND deactivated_at IS NULL"
        " AND id IN (SELECT value FROM json_each(?))",
        (org_id, dumps(sorted(set(user_ids)))),
    )


async def of_user(db: Database, user_id: str) -> list[dict[str, Any]]:
    """The direct conversations a user is in, most recently active first, with their members."""
    rows = await db.fetchall(
        "SELECT c.* FROM channels c JOIN channel_members m ON m.channel_id = c.id"
        " WHERE m.user_id = ? AND c.kind = 'dm' ORDER BY c.last_seq DESC",
        (user_id,),
    )
    channels = [tenancy.channel_json(row) for row in rows]
    members = await db.fetchall(
        "SELECT m.channel_id, u.id, u.kind, u.name, u.handle FROM channel_members m JOIN users u ON u.id = m.user_id"
        " WHERE m.channel_id IN (SELECT value FROM json_each(?)) ORDER BY u.name",
        (dumps([c["id"] for c in channels]),),
    )
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for row in members:
        by_channel.setdefault(row["channel_id"], []).append(
            {"id": row["id"], "kind": row["kind"], "name": row["name"], "handle": row["handle"]}
        )
    return [{**channel, "members": by_channel.get(channel["id"], [])} for channel in channels]
