"""Cards' live state, poll votes, interactions and task-card links: every statement about them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..events import Actor, Event, MessageUpdated, now_rfc3339
from .db import Database, WriteTx, dumps, loads
from .shapes import envelope_of, message_in


def message(tx: WriteTx, message_id: str) -> dict[str, Any]:
    return message_in(tx, message_id)


def set_state(tx: WriteTx, message_id: str, state: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """Replace a card's live state; everyone who reads the channel sees `message.updated`."""
    tx.execute(
        "UPDATE messages SET card_state = ?, updated_at = ? WHERE id = ?", (dumps(state), now_rfc3339(), message_id)
    )
    updated = message(tx, message_id)
    tx.emit(Event(MessageUpdated(message=updated), **envelope_of(updated, actor)))
    return updated


def set_blocks(tx: WriteTx, message_id: str, blocks: list[dict[str, Any]]) -> None:
    """Replace a card's blocks (an incident card whose buttons change with its status)."""
    tx.execute("UPDATE messages SET blocks = ? WHERE id = ?", (dumps(blocks), message_id))


def state(tx: WriteTx, message_id: str) -> dict[str, Any]:
    row = tx.one("SELECT card_state FROM messages WHERE id = ?", (message_id,))
    return (loads(row["card_state"]) or {}) if row is not None else {}


def thread_of(tx: WriteTx, message_id: str) -> str | None:
    row = tx.one("SELECT thread_id FROM messages WHERE id = ?", (message_id,))
    return None if row is None else row["thread_id"]


def task_cards(tx: WriteTx, task_id: str) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """The cards bound to a task: `(message_id, blocks, card_state)` each."""
    found = []
    for link in tx.all("SELECT message_id FROM task_cards WHERE task_id = ?", (task_id,)):
        row = tx.one("SELECT card_state, blocks FROM messages WHERE id = ?", (link["message_id"],))
        found.append((link["message_id"], loads(row["blocks"]) or [], loads(row["card_state"]) or {}))
    return found


def vote_choice(tx: WriteTx, message_id: str, block_id: str, voter_id: str | None) -> str | None:
    row = tx.one(
        "SELECT choice FROM poll_votes WHERE message_id = ? AND block_id = ? AND voter_id = ?",
        (message_id, block_id, voter_id),
    )
    return None if row is None else row["choice"]


def record_vote(
    tx: WriteTx, message_id: str, block_id: str, voter_id: str | None, voter_name: str | None, choice: str
) -> None:
    """One vote per person and poll: a new vote replaces the old one."""
    tx.execute(
        "INSERT INTO poll_votes (message_id, block_id, voter_id, voter_name, choice, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(message_id, block_id, voter_id)"
        " DO UPDATE SET choice = excluded.choice, voter_name = excluded.voter_name,"
        " updated_at = excluded.updated_at",
        (message_id, block_id, voter_id, voter_name, choice, now_rfc3339()),
    )


def votes(tx: WriteTx, message_id: str, block_id: str) -> list[tuple[str, list[Any]]]:
    """Every vote of a poll: `(voter_name, choices)`."""
    rows = tx.all(
        "SELECT voter_name, choice FROM poll_votes WHERE message_id = ? AND block_id = ?", (message_id, block_id)
    )
    return [(row["voter_name"], loads(row["choice"])) for row in rows]


def record_interaction(tx: WriteTx, interaction: Mapping[str, Any], org_id: str) -> None:
    user = interaction["user"]
    tx.execute(
        "INSERT INTO interactions (id, org_id, message_id, block_id, action_id, kind, actor_kind, actor_id,"
        " actor_name, vals, connector, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            interaction["id"],
            org_id,
            interaction["message_id"],
            interaction["block_id"],
            interaction["action_id"],
            interaction["kind"],
            user["kind"],
            user["id"],
            user["name"],
            dumps(interaction["values"]),
            interaction["connector"],
            interaction["created_at"],
        ),
    )


async def task_card_channels(db: Database, task_id: str) -> set[str]:
    """The channels where a task has a live card."""
    rows = await db.fetchall(
        "SELECT m.channel_id FROM task_cards c JOIN messages m ON m.id = c.message_id WHERE c.task_id = ?", (task_id,)
    )
    return {row[0] for row in rows}


async def form_responses(db: Database, message_id: str) -> list[dict[str, Any]]:
    """Every answer submitted to a message's forms, oldest first."""
    rows = await db.fetchall(
        "SELECT id, block_id, actor_kind, actor_id, actor_name, vals, created_at FROM interactions"
        " WHERE message_id = ? AND kind = 'form' ORDER BY created_at, id",
        (message_id,),
    )
    return [
        {
            "id": row["id"],
            "block_id": row["block_id"],
            "user": {"kind": row["actor_kind"], "id": row["actor_id"], "name": row["actor_name"]},
            "values": loads(row["vals"]) or {},
            "created_at": row["created_at"],
        }
        for row in rows
    ]
